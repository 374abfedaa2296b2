"""The only code that draws (streamlit, plotly). Shared widgets live in modules named for what they draw;
each page's sections live in its topic folder (``ui/trainability/``, ``ui/fractalnet/``, ...)."""
