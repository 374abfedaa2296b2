"""Shared Streamlit drawing helpers for Fractal Lab's pages.

Pages stay thin (read widgets -> build a spec -> submit or fetch -> draw); whatever two pages would otherwise
copy lives here instead:

- query-param state: every view is a link, so a page reads its typed state from ``st.query_params`` with
  defaults and writes it back (``read_query_params`` / ``write_query_params``; the pure ``encode_query_value`` /
  ``decode_query_value`` do the string conversion and are testable without Streamlit);
- ``job_progress_panel``: state, progress bar with fraction and ETA, cancel button, the error of a failed job;
  meant to sit inside ``st.fragment(run_every=...)`` so only the panel reruns while a job is live
  (``live_job_fragment`` wires that up);
- ``curves_figure`` / ``live_curves``: a plotly line chart from a job's event dicts (``jobs.events``);
- ``download_row``: one ``st.download_button`` per file of a ``{filename: (bytes, mime)}`` dict;
- ``copy_link``: the URL of the current view, with a copy-to-clipboard control;
- views of a 2-D parameter plane: ``zoom_view`` / ``box_view`` (zoom arithmetic), ``axis_ticks`` (labels that
  stay distinct at deep zoom) and ``heatmap_figure`` (a plotly heatmap with the invisible click overlay that
  Streamlit's ``on_select`` needs, see ../shared/streamlit-notes.md);
- ``grid_view_query`` / ``parse_grid_view_query``: the Trainability Explorer's whole state (preset, spec fields,
  zoom path, level) as query parameters; the Runs page links back to a view with ``grid_view_query``.

Nothing here computes science or touches the store directly: the job helpers call the public ``jobs`` API.
Other page helpers may append functions at the end of this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import streamlit as st

# ----------------------------------------------------------------------------------------------------------------
# Query-param state
# ----------------------------------------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
NONE_TOKEN = "none"


def _format_number(value: float | int) -> str:
    """Shortest text that reads back as exactly the same number (``repr`` round-trips floats)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def encode_query_value(value: Any) -> str:
    """Turn a typed value into URL text.

    Scalars become their shortest exact text (floats use ``repr`` so a deep-zoom coordinate survives the round
    trip bit for bit); ``None`` becomes ``"none"``; a flat sequence is comma-joined; a sequence of sequences
    (e.g. a zoom path of ``(x0, x1, y0, y1)`` views) is ``;``-joined rows of comma-joined values.
    """
    if value is None:
        return NONE_TOKEN
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return _format_number(value)
    if isinstance(value, str):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return encode_query_value(value.item())
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (list, tuple)) for v in value):
            return ";".join(",".join(encode_query_value(x) for x in row) for row in value)
        return ",".join(encode_query_value(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__} as a query value")


def _decode_scalar(text: str, like: Any) -> Any:
    text = text.strip()
    if isinstance(like, bool):
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"expected a boolean (1/0/true/false), got {text!r}")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        value = float(text)
        return value
    return text


def decode_query_value(text: str, like: Any) -> Any:
    """Parse URL text back into the type of ``like`` (the default value); raises ``ValueError`` if it cannot.

    ``like`` may be a bool, int, float, str, a tuple/list of those (comma-separated, same length when ``like`` is a
    tuple), or a list of tuples (``;``-separated rows). ``"none"`` decodes to ``None`` for any type.
    """
    if text.strip().lower() == NONE_TOKEN:
        return None
    if isinstance(like, (list, tuple)):
        if like and all(isinstance(v, (list, tuple)) for v in like):
            template = like[0]
            rows = [r for r in text.split(";") if r.strip()]
            return [decode_query_value(r, template) for r in rows]
        parts = [p for p in text.split(",")] if text.strip() else []
        if isinstance(like, tuple):
            if like and len(parts) != len(like):
                raise ValueError(f"expected {len(like)} comma-separated values, got {len(parts)}")
            items = like if like else [""] * len(parts)
            return tuple(_decode_scalar(p, l) for p, l in zip(parts, items))
        elem = like[0] if like else ""
        return [_decode_scalar(p, elem) for p in parts]
    if like is None:
        return text
    return _decode_scalar(text, like)


def read_query_params(
    defaults: Mapping[str, Any],
    *,
    prefix: str = "",
    types: Mapping[str, Any] | None = None,
    errors: list[str] | None = None,
) -> dict[str, Any]:
    """Read ``defaults``' keys from ``st.query_params``, each parsed to its default's type.

    ``types`` gives a template value for keys whose default is ``None`` (e.g. ``{"dataset_size": 0}`` to read an
    int that may be absent). A value that does not parse falls back to the default and, when ``errors`` is a list,
    a line naming the parameter is appended to it, so a page can say "ignored bad link parameter" instead of
    crashing on a hand-edited URL.
    """
    out: dict[str, Any] = {}
    params = st.query_params
    for key, default in defaults.items():
        name = prefix + key
        if name not in params:
            out[key] = default
            continue
        like = (types or {}).get(key, default)
        try:
            out[key] = decode_query_value(params[name], like)
        except (TypeError, ValueError) as exc:
            out[key] = default
            if errors is not None:
                errors.append(f"{name}: {exc}")
    return out


def write_query_params(
    values: Mapping[str, Any],
    *,
    prefix: str = "",
    defaults: Mapping[str, Any] | None = None,
    clear_others: bool = False,
) -> None:
    """Write ``values`` into ``st.query_params`` (the browser's URL updates; no rerun is triggered).

    Only keys whose text changed are written, so calling this on every run is cheap and does not churn the
    browser history. With ``defaults``, a value equal to its default is removed from the URL (shorter links).
    ``clear_others`` removes every other parameter (a page that owns the whole URL).
    """
    params = st.query_params
    wanted: dict[str, str] = {}
    for key, value in values.items():
        if defaults is not None and key in defaults and defaults[key] == value:
            continue
        wanted[prefix + key] = encode_query_value(value)
    if clear_others:
        for name in list(params.keys()):
            if name not in wanted:
                del params[name]
    elif defaults is not None:
        for key in values:
            name = prefix + key
            if name not in wanted and name in params:
                del params[name]
    for name, text in wanted.items():
        if params.get(name) != text:
            params[name] = text


# ----------------------------------------------------------------------------------------------------------------
# Jobs: progress panel
# ----------------------------------------------------------------------------------------------------------------

LIVE_STATES = ("queued", "running")
# Material icons (Streamlit's markdown renders ``:material/name:`` with its bundled font, so they show on any
# machine, unlike emoji, which need an emoji font).
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/autorenew:", "done": ":material/check_circle:",
               "failed": ":material/error:", "cancelled": ":material/cancel:"}


def format_duration(seconds: float | None) -> str:
    """Human text for a duration: ``"8 s"``, ``"3 min 5 s"``, ``"1 h 2 min"``; ``"—"`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        m, s = divmod(seconds, 60)
        return f"{m} min {s} s" if s else f"{m} min"
    h, rem = divmod(seconds, 3600)
    return f"{h} h {rem // 60} min"


def _field(status: Any, name: str, default: Any = None) -> Any:
    if isinstance(status, Mapping):
        return status.get(name, default)
    return getattr(status, name, default)


def job_progress_text(status: Any) -> str:
    """One markdown line for a job's status: ``":material/autorenew: running · 42% · about 8 s left · message"``."""
    state = _field(status, "state", "unknown")
    parts = [f"{STATE_ICONS.get(state, '')} {state}".strip()]
    fraction = _field(status, "fraction")
    if state in LIVE_STATES and fraction is not None:
        parts.append(f"{100 * float(fraction):.0f}%")
        eta = _field(status, "eta_s")
        if state == "running" and eta is not None:
            parts.append(f"about {format_duration(eta)} left")
    message = _field(status, "message")
    if message and state != "failed":
        parts.append(str(message))
    return " · ".join(parts)


def job_progress_panel(
    job_id: str | None,
    *,
    key: str,
    title: str | None = None,
    on_cancel: Callable[[str], None] | None = None,
    cancellable: bool = True,
) -> Any:
    """Draw one job's state: a progress bar with fraction and ETA, a cancel button, a failed job's error.

    Returns the ``jobs.status`` object (or ``None`` when ``job_id`` is None or unknown). Put it inside
    ``st.fragment(run_every=...)`` (see ``live_job_fragment``) so only this panel reruns while the job is live;
    the job itself lives on disk, so a reload or a second tab shows the same panel.
    """
    if not job_id:
        return None
    import jobs  # lazily: pages that never run a job do not import the runner

    status = jobs.status(job_id)
    if status is None:
        st.warning(f"Job `{job_id}` is no longer known (it may have been deleted).")
        return None
    state = _field(status, "state")
    if title:
        st.markdown(f"**{title}**")
    if state in LIVE_STATES:
        fraction = float(_field(status, "fraction", 0.0) or 0.0)
        st.progress(min(max(fraction, 0.0), 1.0), text=job_progress_text(status))
        if cancellable and st.button("Cancel", key=f"{key}-cancel-{job_id}", icon=":material/stop_circle:",
                                     type="tertiary", help="Stop this job's process"):
            jobs.cancel(job_id)
            if on_cancel is not None:
                on_cancel(job_id)
            st.rerun()
    elif state == "failed":
        st.error(f"Job failed: {_field(status, 'message') or 'no message'}")
    elif state == "cancelled":
        st.warning("Job cancelled.")
    elif state == "done":
        elapsed = _field(status, "elapsed_s")
        took = f" in {format_duration(elapsed)}" if isinstance(elapsed, (int, float)) else ""
        st.caption(f"{STATE_ICONS['done']} done{took}")
    return status


def live_job_fragment(
    job_id: str | None,
    *,
    key: str,
    interval: float = 0.5,
    title: str | None = None,
    on_cancel: Callable[[str], None] | None = None,
    extra: Callable[[Any], None] | None = None,
    rerun_app_when_finished: bool = True,
) -> None:
    """Draw ``job_progress_panel`` in a fragment that reruns every ``interval`` seconds while the job is live.

    ``extra(status)`` draws more inside the same fragment (e.g. ``live_curves`` of the job's events). When the
    job leaves the live states the whole app reruns once (``rerun_app_when_finished``), so the page can draw the
    finished result; a finished job gets a fragment without ``run_every``, so nothing polls.
    """
    import jobs

    live = job_id is not None and _field(jobs.status(job_id), "state") in LIVE_STATES

    @st.fragment(run_every=interval if live else None)
    def _panel() -> None:
        status = job_progress_panel(job_id, key=key, title=title, on_cancel=on_cancel)
        if extra is not None and status is not None:
            extra(status)
        if live and rerun_app_when_finished and status is not None:
            if _field(status, "state") not in LIVE_STATES:
                st.rerun(scope="app")

    _panel()


# ----------------------------------------------------------------------------------------------------------------
# Live curves
# ----------------------------------------------------------------------------------------------------------------


def curves_figure(
    events: Sequence[Mapping[str, Any]],
    *,
    x: str = "step",
    y: Sequence[str] | str | None = None,
    title: str | None = None,
    log_y: bool = False,
    height: int = 320,
    x_title: str | None = None,
    y_title: str | None = None,
):
    """A plotly line chart with one line per key in ``y``, from event dicts such as ``jobs.events(id)``.

    Events lacking ``x`` or a ``y`` key are skipped for that line (jobs mix event kinds); with ``y=None`` every
    numeric key other than ``x`` gets a line. Non-finite values are dropped so one diverged loss does not blank
    the chart.
    """
    import plotly.graph_objects as go

    if isinstance(y, str):
        y = [y]
    if y is None:
        keys: list[str] = []
        for ev in events:
            for k, v in ev.items():
                if k != x and k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool):
                    keys.append(k)
        y = keys
    fig = go.Figure()
    for name in y:
        xs, ys = [], []
        for ev in events:
            if x in ev and name in ev:
                try:
                    xv, yv = float(ev[x]), float(ev[name])
                except (TypeError, ValueError):
                    continue
                if math.isfinite(xv) and math.isfinite(yv) and (not log_y or yv > 0):
                    xs.append(xv)
                    ys.append(yv)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name))
    fig.update_layout(
        title=title, height=height, margin=dict(l=50, r=20, t=40 if title else 20, b=40),
        xaxis_title=x_title or x, yaxis_title=y_title or (y[0] if len(y) == 1 else None),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def live_curves(
    events: Sequence[Mapping[str, Any]],
    *,
    key: str | None = None,
    **figure_kwargs: Any,
) -> None:
    """Draw ``curves_figure(events, ...)``; call it inside a ``run_every`` fragment to watch a job live."""
    if not events:
        st.caption("No data points yet.")
        return
    st.plotly_chart(curves_figure(events, **figure_kwargs), key=key, width="stretch")


# ----------------------------------------------------------------------------------------------------------------
# Downloads and links
# ----------------------------------------------------------------------------------------------------------------


def download_row(
    files: Mapping[str, tuple[bytes, str]],
    *,
    key: str,
    labels: Mapping[str, str] | None = None,
    columns: int | None = None,
) -> None:
    """One ``st.download_button`` per file: ``files`` maps a filename to ``(data, mime)``.

    Side by side by default; ``columns`` wraps them into that many columns (1 = a vertical stack, for narrow
    places). ``on_click="ignore"`` keeps a download from rerunning the page (a rerun would redraw the map for
    nothing). Labels default to the file name.
    """
    if not files:
        return
    n = max(1, min(columns or len(files), len(files)))
    cols = st.columns(n)
    for i, (name, (data, mime)) in enumerate(files.items()):
        with cols[i % n]:
            st.download_button(
                (labels or {}).get(name, f"⬇ {name}"), data=data, file_name=name, mime=mime,
                key=f"{key}-dl-{name}", on_click="ignore", width="stretch",
            )


def current_url(query: Mapping[str, str] | None = None, *, base_url: str | None = None) -> str:
    """The page's URL with ``query`` (default: the current ``st.query_params``) as its query string."""
    if base_url is None:
        try:
            base_url = st.context.url or ""
        except Exception:  # AppTest and bare-mode runs have no browser URL
            base_url = ""
    if query is None:
        query = {k: st.query_params[k] for k in st.query_params.keys()}
    text = urlencode(dict(query), safe=",;")
    return f"{base_url}?{text}" if text else base_url


def copy_link(
    query: Mapping[str, str] | None = None,
    *,
    label: str = "Copy link",
    base_url: str | None = None,
    help: str = "A link that reopens exactly this view",
) -> str:
    """A popover holding the view's full URL in a code box whose copy icon puts it on the clipboard.

    A code box is used (not a JavaScript clipboard call) because it works on plain http and inside iframes,
    and the user can also select the text by hand. Returns the URL.
    """
    url = current_url(query, base_url=base_url)
    with st.popover(label, help=help, icon=":material/link:"):
        st.caption("Click the copy icon at the right of the box, then paste the link anywhere.")
        st.code(url, language=None, wrap_lines=True)
    return url


# ----------------------------------------------------------------------------------------------------------------
# Views of a 2-D parameter plane: zoom arithmetic, readable ticks, heatmap with a click overlay
# ----------------------------------------------------------------------------------------------------------------

View = tuple[float, float, float, float]  # (x0, x1, y0, y1), in axis units (log10 for the trainability maps)


def zoom_view(view: Sequence[float], x: float, y: float, factor: float) -> View:
    """The view ``factor`` times narrower on both axes, centred on the point ``(x, y)``.

    ``factor < 1`` zooms out. The centre is the clicked point itself (not clamped to the old view), so repeated
    clicks on one feature keep it in the middle, as a user expects.
    """
    if not factor > 0:
        raise ValueError(f"factor: must be > 0, got {factor}")
    x0, x1, y0, y1 = (float(v) for v in view)
    hw, hh = (x1 - x0) / (2 * factor), (y1 - y0) / (2 * factor)
    return (x - hw, x + hw, y - hh, y + hh)


def box_view(xs: Sequence[float], ys: Sequence[float]) -> View:
    """The view spanned by a dragged box (corners in any order); raises ``ValueError`` for a box with no area."""
    x0, x1 = sorted(float(v) for v in xs)[0], sorted(float(v) for v in xs)[-1]
    y0, y1 = sorted(float(v) for v in ys)[0], sorted(float(v) for v in ys)[-1]
    if not (x1 > x0 and y1 > y0):
        raise ValueError("box: the dragged box has no area; drag a rectangle, or click to zoom")
    return (x0, x1, y0, y1)


def view_center(view: Sequence[float]) -> tuple[float, float]:
    x0, x1, y0, y1 = view
    return ((x0 + x1) / 2, (y0 + y1) / 2)


def coordinate_decimals(span: float, divisions: float = 10.0) -> int:
    """Decimals needed so values ``span / divisions`` apart print differently (deep zooms need many)."""
    if not span > 0 or not math.isfinite(span):
        return 3
    return max(0, min(17, int(math.ceil(-math.log10(span / divisions)))))


def format_coordinate(value: float, decimals: int) -> str:
    """Fixed-point text with ``decimals`` digits, and a real minus sign."""
    text = f"{value:.{decimals}f}"
    return text.replace("-", "−")


def _nice_step(raw: float) -> float:
    exp = math.floor(math.log10(raw))
    base = raw / 10**exp
    for nice in (1, 2, 2.5, 5, 10):
        if base <= nice + 1e-9:
            return nice * 10**exp
    return 10 ** (exp + 1)


def axis_ticks(lo: float, hi: float, target: int = 6) -> tuple[list[float], list[str]]:
    """About ``target`` round tick values in ``[lo, hi]`` and labels with just enough digits to differ.

    Plotly's own labels collapse to identical text (or SI suffixes) once a view is ~1e-6 wide; here the step is a
    round 1/2/2.5/5 x 10^k and the labels carry as many decimals as that step needs, so the two ends of a deep
    view always read differently.
    """
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    span = hi - lo
    if not span > 0:
        return [lo], [format_coordinate(lo, 3)]
    step = _nice_step(span / max(1, target))
    decimals = max(0, -math.floor(math.log10(step)) + (1 if round(step / 10 ** math.floor(math.log10(step)), 6) == 2.5 else 0))
    first = math.ceil(lo / step)
    vals: list[float] = []
    k = first
    while k * step <= hi + step * 1e-9 and len(vals) < 4 * target:
        vals.append(k * step)
        k += 1
    return vals, [format_coordinate(v, decimals) for v in vals]


def heatmap_figure(
    z: Any,
    view: Sequence[float],
    *,
    colorscale: Any,
    zmin: float | None = None,
    zmax: float | None = None,
    hover_text: Any = None,
    x_title: str = "x",
    y_title: str = "y",
    legend: Sequence[tuple[str, str]] = (),
    overlay_max: int = 128,
    overlay_min: int = 64,
    marker: tuple[float, float] | None = None,
    height: int = 620,
    title: str | None = None,
):
    """A plotly heatmap of ``z`` (row 0 at the bottom = smallest y) over ``view``, ready for click and box zoom.

    Why the overlay: Streamlit's ``on_select`` gets no event from a click on a bare heatmap, so an invisible
    ``Scattergl`` grid (between ``overlay_min`` and ``overlay_max`` points a side, never sparser, or clicks fall
    between points) lies on top; a click selects its nearest point. The overlay also carries the hover text
    (the heatmap's own hover would be hidden under it): each overlay point shows ``hover_text`` of the nearest
    heatmap pixel. ``legend`` adds coloured squares naming what colours mean; ``marker`` draws a ring at a point
    (e.g. an inspected pixel). Ticks come from :func:`axis_ticks`, so they stay readable at deep zoom.
    """
    import numpy as np
    import plotly.graph_objects as go

    z = np.asarray(z)
    ny, nx = z.shape
    x0, x1, y0, y1 = (float(v) for v in view)
    xs = np.linspace(x0, x1, nx)
    ys = np.linspace(y0, y1, ny)
    fig = go.Figure()
    fig.add_trace(go.Heatmap(
        x=xs, y=ys, z=z, colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=False, hoverinfo="skip",
        name="map",
    ))
    mx = int(min(max(nx, overlay_min), overlay_max))
    my = int(min(max(ny, overlay_min), overlay_max))
    ox = np.linspace(x0, x1, mx)
    oy = np.linspace(y0, y1, my)
    gx, gy = np.meshgrid(ox, oy)
    overlay: dict[str, Any] = dict(
        x=gx.ravel(), y=gy.ravel(), mode="markers", marker=dict(size=10, opacity=0, color="black"),
        showlegend=False, name="click", hoverlabel=dict(namelength=0),
    )
    if hover_text is not None:
        ht = np.asarray(hover_text, dtype=object)
        jx = np.rint((ox - x0) / (x1 - x0) * (nx - 1)).astype(int) if nx > 1 else np.zeros(mx, int)
        iy = np.rint((oy - y0) / (y1 - y0) * (ny - 1)).astype(int) if ny > 1 else np.zeros(my, int)
        overlay["text"] = ht[np.ix_(iy, jx)].ravel().tolist()
        overlay["hovertemplate"] = "%{text}<extra></extra>"
    else:
        overlay["hoverinfo"] = "x+y"
    fig.add_trace(go.Scattergl(**overlay))
    for name, color in legend:
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name=name, hoverinfo="skip",
            marker=dict(symbol="square", size=14, color=color, line=dict(width=1, color="#444")),
        ))
    if marker is not None:
        fig.add_trace(go.Scatter(
            x=[marker[0]], y=[marker[1]], mode="markers", name="inspected", hoverinfo="skip",
            marker=dict(symbol="circle-open", size=18, color="black", line=dict(width=3)),
        ))
    xv, xt = axis_ticks(x0, x1)
    yv, yt = axis_ticks(y0, y1)
    fig.update_xaxes(title=x_title, range=[x0, x1], tickvals=xv, ticktext=xt, showgrid=False, zeroline=False,
                     constrain="domain")
    fig.update_yaxes(title=y_title, range=[y0, y1], tickvals=yv, ticktext=yt, showgrid=False, zeroline=False,
                     constrain="domain")
    fig.update_layout(
        height=height, margin=dict(l=70, r=20, t=60 if title else 40, b=60), hovermode="closest",
        title=title, legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0, font=dict(size=13)),
        plot_bgcolor="white", uirevision=None,
    )
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Trainability Explorer links: the explorer's whole state as query parameters
# ----------------------------------------------------------------------------------------------------------------

EXPLORER_PAGE = "pages/1_Trainability_Explorer.py"
EXPLORER_URL_PATH = "Trainability_Explorer"
# GridSpec fields that are not written as their own parameter: the ranges are the zoom path's first view.
_VIEW_FIELDS = ("x_range", "y_range")
_VIEW_KEYS = ("preset", "path", "level", "factor", "mode", "px")


def _template_for(hint: Any) -> Any:
    """A sample value of a type hint, so ``decode_query_value`` knows what to parse (None-able hints unwrap)."""
    import types as _types
    import typing

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, _types.UnionType):
        for arg in args:
            if arg is not type(None):
                return _template_for(arg)
        return ""
    if origin is typing.Literal:
        return type(args[0])() if args else ""
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return [_template_for(args[0])]
        return tuple(_template_for(a) for a in args)
    if origin is list:
        return [_template_for(args[0])] if args else []
    if hint in (bool, int, float, str):
        return hint()
    return ""


def grid_spec_templates() -> dict[str, Any]:
    """``{field: sample value}`` for every ``GridSpec`` field (how its query parameter parses)."""
    import dataclasses
    import typing

    from engine.trainability import GridSpec

    hints = typing.get_type_hints(GridSpec)
    return {f.name: _template_for(hints.get(f.name, str)) for f in dataclasses.fields(GridSpec)}


def _view_of(spec_dict: Mapping[str, Any]) -> View:
    xr, yr = spec_dict["x_range"], spec_dict["y_range"]
    return (float(xr[0]), float(xr[1]), float(yr[0]), float(yr[1]))


def matching_preset(spec_dict: Mapping[str, Any]) -> str | None:
    """The preset whose science fields equal ``spec_dict``'s (ignoring view, resolution, dtype); else None."""
    from engine.trainability import PRESETS

    ignore = set(_VIEW_FIELDS) | {"resolution", "dtype"}
    for name, p in PRESETS.items():
        d = p.spec.to_dict()
        if all(d.get(k) == spec_dict.get(k) for k in d if k not in ignore):
            return name
    return None


def grid_view_query(
    spec_dict: Mapping[str, Any],
    *,
    preset: str | None = None,
    path: Sequence[Sequence[float]] | None = None,
    level: int | None = None,
    factor: float | None = None,
    mode: str | None = None,
    pixel: tuple[float, float] | None = None,
) -> dict[str, str]:
    """The query parameters that open the Trainability Explorer on ``spec_dict`` (a ``GridSpec.to_dict()``).

    Every spec field is written explicitly (a link keeps its meaning even if a preset's defaults change later),
    except the ranges, which are the zoom ``path``'s views: ``path[0]`` is the full range (what "reset" returns
    to) and ``path[level]`` the view shown. Without ``path``, the view is ``spec_dict``'s ranges, reached from the
    matching preset's full range when there is one (so "back" and "reset" lead out of a re-opened deep view).
    Used by the explorer for its own URL and by the Runs page to link back to a result.
    """
    spec_dict = dict(spec_dict)
    if preset is None:
        preset = matching_preset(spec_dict)
    if path is None:
        view = _view_of(spec_dict)
        path = [view]
        if preset is not None:
            from engine.trainability import PRESETS

            root = _view_of(PRESETS[preset].spec.to_dict())
            if root != view:
                path = [root, view]
    path = [tuple(float(v) for v in p) for p in path]
    if level is None:
        level = len(path) - 1
    q: dict[str, str] = {}
    if preset is not None:
        q["preset"] = preset
    for name in grid_spec_templates():  # GridSpec's field order, whatever the dict's: one view, one URL
        if name in _VIEW_FIELDS or name not in spec_dict:
            continue
        q[name] = encode_query_value(spec_dict[name])
    q["path"] = encode_query_value(path)
    q["level"] = str(int(level))
    if factor is not None:
        q["factor"] = encode_query_value(float(factor))
    if mode is not None:
        q["mode"] = mode
    if pixel is not None:
        q["px"] = encode_query_value(tuple(float(v) for v in pixel))
    return q


def grid_view_link(spec_dict: Mapping[str, Any], **kwargs: Any) -> str:
    """A relative URL (``/Trainability_Explorer?...``) that opens ``spec_dict``'s view in the explorer."""
    return f"/{EXPLORER_URL_PATH}?" + urlencode(grid_view_query(spec_dict, **kwargs), safe=",;")


def parse_grid_view_query(params: Mapping[str, str]) -> dict[str, Any] | None:
    """Inverse of :func:`grid_view_query`: ``None`` when ``params`` hold no explorer state at all.

    Returns ``{"preset", "spec" (a GridSpec, ranges = path[0]), "path", "level", "factor", "mode", "pixel",
    "errors"}``. Fields missing from the link come from the preset (default: the first); a parameter that does
    not parse is ignored with a line in ``errors``; a spec that fails validation falls back to the preset's with
    the ``ValueError``'s message in ``errors``, so a hand-edited link never crashes the page.
    """
    from engine.trainability import PRESETS, GridSpec

    templates = grid_spec_templates()
    known = set(templates) | set(_VIEW_KEYS)
    if not any(k in params for k in known):
        return None
    errors: list[str] = []
    preset = params.get("preset")
    if preset not in PRESETS:
        if preset is not None:
            errors.append(f"preset: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        preset = next(iter(PRESETS))
    base = PRESETS[preset].spec.to_dict()
    fields = dict(base)
    for name, like in templates.items():
        if name in _VIEW_FIELDS or name not in params:
            continue
        try:
            fields[name] = decode_query_value(params[name], like)
        except (TypeError, ValueError) as exc:
            errors.append(f"{name}: {exc}")
    path: list[View] = []
    if "path" in params:
        try:
            rows = decode_query_value(params["path"], [(0.0, 0.0, 0.0, 0.0)])
            path = [tuple(r) for r in (rows or []) if all(math.isfinite(v) for v in r)]
            if rows and len(path) != len(rows):
                errors.append("path: a view with non-finite coordinates was dropped")
        except (TypeError, ValueError) as exc:
            errors.append(f"path: {exc}")
    if path:
        fields["x_range"] = [path[0][0], path[0][1]]
        fields["y_range"] = [path[0][2], path[0][3]]
    try:
        spec = GridSpec.from_dict(fields)
    except (TypeError, ValueError) as exc:
        errors.append(str(exc))
        spec = PRESETS[preset].spec
        path = []
    if not path:
        path = [_view_of(spec.to_dict())]
    import dataclasses

    for i, v in enumerate(path[1:], start=1):  # every view must be computable at this resolution
        try:
            dataclasses.replace(spec, x_range=(v[0], v[1]), y_range=(v[2], v[3]))
        except ValueError as exc:
            errors.append(f"path: level {i} and deeper dropped ({exc})")
            path = path[:i]
            break
    level = len(path) - 1
    if "level" in params:
        try:
            level = int(params["level"])
        except ValueError:
            errors.append(f"level: expected an integer, got {params['level']!r}")
    level = min(max(level, 0), len(path) - 1)
    factor = 2.0
    if "factor" in params:
        try:
            factor = float(params["factor"])
            if not factor > 1:
                raise ValueError(f"must be > 1, got {factor}")
        except ValueError as exc:
            errors.append(f"factor: {exc}")
            factor = 2.0
    mode = params.get("mode", "zoom")
    if mode not in ("zoom", "inspect"):
        errors.append(f"mode: expected 'zoom' or 'inspect', got {mode!r}")
        mode = "zoom"
    pixel = None
    if "px" in params:
        try:
            pixel = decode_query_value(params["px"], (0.0, 0.0))
        except (TypeError, ValueError) as exc:
            errors.append(f"px: {exc}")
    return {"preset": preset, "spec": spec, "path": path, "level": level, "factor": factor, "mode": mode,
            "pixel": pixel, "errors": errors}


# ----------------------------------------------------------------------------------------------------------------
# Figures as PNG files (added by the FractalNet lab): drawn with Pillow, because plotly's PNG export needs kaleido
# and a browser. Plain line, bar and heatmap charts: enough for a download button beside each plotly chart.
# ----------------------------------------------------------------------------------------------------------------

PNG_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
              "#bcbd22", "#17becf")


def _png_font(size: int = 13):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _tick_text(v: float) -> str:
    return f"{v:.4g}"


def _png_canvas(width: int, height: int, title: str | None):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((width // 2, 8), title, fill="black", font=_png_font(15), anchor="mt")
    return img, draw


def _png_y_title(img, draw, text: str, top: float, bottom: float) -> None:
    """Paste ``text`` rotated by 90 degrees at the left edge, centred on the plot's height."""
    if not text:
        return
    from PIL import Image, ImageDraw

    font = _png_font(12)
    label = Image.new("RGB", (max(10, int(draw.textlength(text, font=font)) + 4), 16), "white")
    ImageDraw.Draw(label).text((2, 1), text, fill="black", font=font)
    label = label.rotate(90, expand=True)
    img.paste(label, (4, int((top + bottom) / 2 - label.height / 2)))


def _png_bytes_of(img) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str | None = None,
    x_title: str = "",
    y_title: str = "",
    width: int = 760,
    height: int = 420,
    log_y: bool = False,
) -> bytes:
    """A PNG line chart: ``series`` maps a legend name to ``(xs, ys)``; non-finite points are skipped."""
    img, draw = _png_canvas(width, height, title)
    font = _png_font(12)
    clean: dict[str, list[tuple[float, float]]] = {}
    for name, (xs, ys) in series.items():
        pts = []
        for x, y in zip(xs, ys):
            try:
                x, y = float(x), float(y)
            except (TypeError, ValueError):
                continue
            if math.isfinite(x) and math.isfinite(y) and (not log_y or y > 0):
                pts.append((x, math.log10(y) if log_y else y))
        clean[name] = pts
    allpts = [p for pts in clean.values() for p in pts]
    x0, x1 = (min(p[0] for p in allpts), max(p[0] for p in allpts)) if allpts else (0.0, 1.0)
    y0, y1 = (min(p[1] for p in allpts), max(p[1] for p in allpts)) if allpts else (0.0, 1.0)
    if x1 <= x0:
        x1 = x0 + 1.0
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.04 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad
    legend_rows = math.ceil(len(clean) / 4) if clean else 0
    left, right, top, bottom = 64, width - 16, 34 + 16 * legend_rows, height - 44

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def py(y: float) -> float:
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    for t in _nice_ticks(y0, y1):
        yy = py(t)
        draw.line([(left, yy), (right, yy)], fill="#e6e6e6")
        draw.text((left - 6, yy), _tick_text(10**t if log_y else t), fill="#444", font=font, anchor="rm")
    for t in _nice_ticks(x0, x1, 6):
        xx = px(t)
        draw.line([(xx, top), (xx, bottom)], fill="#f0f0f0")
        draw.text((xx, bottom + 6), _tick_text(t), fill="#444", font=font, anchor="mt")
    draw.rectangle([left, top, right, bottom], outline="#888")
    for i, (name, pts) in enumerate(clean.items()):
        color = PNG_COLORS[i % len(PNG_COLORS)]
        if len(pts) >= 2:
            draw.line([(px(x), py(y)) for x, y in pts], fill=color, width=2)
        elif pts:
            x, y = pts[0]
            draw.ellipse([px(x) - 3, py(y) - 3, px(x) + 3, py(y) + 3], fill=color)
        lx = left + (i % 4) * ((right - left) // 4)
        ly = 30 + 16 * (i // 4)
        draw.line([(lx, ly + 7), (lx + 18, ly + 7)], fill=color, width=3)
        draw.text((lx + 22, ly), str(name)[:28], fill="black", font=font)
    if x_title:
        draw.text(((left + right) // 2, height - 6), x_title, fill="black", font=font, anchor="mb")
    _png_y_title(img, draw, y_title, top, bottom)
    return _png_bytes_of(img)


def png_bar_chart(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str | None = None,
    y_title: str = "",
    y_range: tuple[float, float] | None = None,
    width: int = 760,
    height: int = 420,
    value_format: str = "{:.3f}",
) -> bytes:
    """A PNG grouped bar chart: one group per label in ``groups``, one bar per series, values printed on top."""
    img, draw = _png_canvas(width, height, title)
    font = _png_font(12)
    vals = [float(v) for vs in series.values() for v in vs if v is not None and math.isfinite(float(v))]
    lo, hi = y_range if y_range is not None else (min(0.0, min(vals, default=0.0)), max(vals, default=1.0) or 1.0)
    if hi <= lo:
        hi = lo + 1.0
    legend_rows = math.ceil(len(series) / 4) if len(series) > 1 else 0
    left, right, top, bottom = 64, width - 16, 40 + 16 * legend_rows, height - 50

    def py(y: float) -> float:
        return bottom - (min(max(y, lo), hi) - lo) / (hi - lo) * (bottom - top)

    for t in _nice_ticks(lo, hi):
        draw.line([(left, py(t)), (right, py(t))], fill="#e6e6e6")
        draw.text((left - 6, py(t)), _tick_text(t), fill="#444", font=font, anchor="rm")
    n_groups, n_series = max(1, len(groups)), max(1, len(series))
    gw = (right - left) / n_groups
    bw = gw * 0.8 / n_series
    for si, (name, vs) in enumerate(series.items()):
        color = PNG_COLORS[si % len(PNG_COLORS)]
        for gi, v in enumerate(vs):
            if v is None or not math.isfinite(float(v)):
                continue
            xa = left + gi * gw + gw * 0.1 + si * bw
            draw.rectangle([xa, py(float(v)), xa + bw - 2, py(max(lo, 0.0))], fill=color)
            draw.text((xa + bw / 2, py(float(v)) - 2), value_format.format(float(v)), fill="black", font=font,
                      anchor="mb")
        if len(series) > 1:
            lx = left + (si % 4) * ((right - left) // 4)
            ly = 30 + 16 * (si // 4)
            draw.rectangle([lx, ly + 2, lx + 12, ly + 12], fill=color)
            draw.text((lx + 16, ly), str(name)[:28], fill="black", font=font)
    for gi, g in enumerate(groups):
        draw.text((left + gi * gw + gw / 2, bottom + 6), str(g)[:24], fill="black", font=font, anchor="mt")
    draw.rectangle([left, top, right, bottom], outline="#888")
    _png_y_title(img, draw, y_title, top, bottom)
    return _png_bytes_of(img)


def png_heatmap(
    matrix: Sequence[Sequence[float]],
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    x_title: str = "",
    y_title: str = "",
    annotate: bool = True,
    cell: int | None = None,
) -> bytes:
    """A PNG heatmap (white to dark blue) with optional numbers in the cells: e.g. a confusion matrix."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    rows, cols = m.shape
    cell = cell or max(10, min(48, 560 // max(rows, cols, 1)))
    left, top = 90, 40
    width, height = left + cols * cell + 20, top + rows * cell + 50
    img, draw = _png_canvas(width, height, title)
    font = _png_font(max(8, min(12, cell // 3)))
    finite = m[np.isfinite(m)]
    hi = float(finite.max()) if finite.size else 1.0
    lo = float(min(0.0, finite.min())) if finite.size else 0.0
    span = hi - lo if hi > lo else 1.0
    for i in range(rows):
        for j in range(cols):
            v = m[i, j]
            t = 0.0 if not math.isfinite(v) else (v - lo) / span
            color = (int(255 - t * 247), int(255 - t * 207), int(255 - t * 148))
            x, y = left + j * cell, top + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=color)
            if annotate and cell >= 18 and math.isfinite(v):
                text = f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"
                draw.text((x + cell / 2, y + cell / 2), text, fill="white" if t > 0.55 else "black", font=font,
                          anchor="mm")
    for i, lab in enumerate(row_labels or []):
        draw.text((left - 4, top + i * cell + cell / 2), str(lab)[:12], fill="black", font=font, anchor="rm")
    for j, lab in enumerate(col_labels or []):
        draw.text((left + j * cell + cell / 2, top + rows * cell + 4), str(lab)[:6], fill="black", font=font,
                  anchor="mt")
    if x_title:
        draw.text((left + cols * cell / 2, height - 6), x_title, fill="black", font=_png_font(12), anchor="mb")
    _png_y_title(img, draw, y_title, top, top + rows * cell)
    return _png_bytes_of(img)
