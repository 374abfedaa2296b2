"""Download buttons and shareable links: how results and views leave the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

import streamlit as st

def download_row(
    files: Mapping[str, tuple[bytes, str]],
    *,
    key: str,
    labels: Mapping[str, str] | None = None,
    columns: int | None = None,
    icon: str | None = ":material/download:",
) -> None:
    """One ``st.download_button`` per file: ``files`` maps a filename to ``(data, mime)``.

    Side by side by default; ``columns`` wraps them into that many columns (1 = a vertical stack, for narrow
    places). ``on_click="ignore"`` keeps a download from rerunning the page (a rerun would redraw the map for
    nothing). Labels default to the file name. ``icon`` (e.g. ``":material/download:"``) goes on every button, and
    then a label is the bare file name. ``data`` may be a no-argument callable: it then runs only on a click.
    """
    if not files:
        return
    n = max(1, min(columns or len(files), len(files)))
    cols = st.columns(n)
    for i, (name, (data, mime)) in enumerate(files.items()):
        with cols[i % n]:
            st.download_button(
                (labels or {}).get(name, name), data=data, file_name=name, mime=mime,
                key=f"{key}-dl-{name}", on_click="ignore", width="stretch", icon=icon,
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
