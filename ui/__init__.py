"""The only code that draws (streamlit, plotly). Shared widgets live in modules named for what they draw;
each page's sections live in its topic folder (``ui/trainability/``, ``ui/fractalnet/``, ...)."""
# TRANSITION ONLY (removed when every page imports the modules directly)
from engine.png import *  # noqa
from engine.png import _nice_ticks  # noqa
from ui.curves import *  # noqa
from ui.downloads import *  # noqa
from ui.format import *  # noqa
from ui.heatmap import *  # noqa
from ui.jobs import *  # noqa
from ui.state import *  # noqa
from ui.state import NONE_TOKEN  # noqa
from ui.trainability.link import *  # noqa
from ui.trainability.link import _view_of  # noqa
_png_font = font  # noqa
