"""What can be done with one run: open it on its page, download it, cancel it, resume a stopped training from
its checkpoint, name it and write a note, and delete it (a second click confirms).

A live row is redrawn by its own fragment; a button there that changes the list (cancel, resume, delete) reruns
the whole page so every row and count agree.
"""

from __future__ import annotations

import streamlit as st

import runs
from cache import default_store, human_size
from runs import notes, resume
from ui import nav
from ui.format import LIVE_STATES

CONFIRM = "runs-confirm-del"  # session key: the id of the run whose Delete waits for its confirmation


def actions(run: runs.JobStatus) -> None:
    """The action column of a row."""
    _reopen_link(run)
    if run.has_result:
        st.download_button(
            "Download (.zip)", data=lambda key=run.id: default_store().zip_bytes(key), icon=":material/download:",
            file_name=f"{run.id}.zip", mime="application/zip", key=f"runs-dl-{run.id}",
            on_click="ignore", width="stretch",
        )
    if run.state in LIVE_STATES:
        if st.button("Cancel", key=f"runs-cancel-{run.id}", icon=":material/stop_circle:", width="stretch"):
            runs.cancel(run.id)
            st.rerun(scope="app")
    _resume_button(run)
    _name_editor(run)
    st.button("Delete…", key=f"runs-del-{run.id}", icon=":material/delete:", width="stretch", on_click=_ask_delete,
              args=(run.id,), help="Stop the job if it runs, and remove its record and stored files (asks first)")


def _ask_delete(run_id: str) -> None:
    st.session_state[CONFIRM] = run_id  # before the rerun draws the rows: the row above the button asks


def delete_confirmation(run: runs.JobStatus) -> None:
    """Under a row whose Delete was pressed: what will go, and "Yes, delete" / "Keep it"."""
    if st.session_state.get(CONFIRM) != run.id:
        return
    what = "stops the job and removes its record" if run.active else "removes its record"
    size = (f" and {human_size(run.size)} of stored files" if run.size else
            " and its stored files" if run.has_result else "")
    st.warning(f"Delete this run? This {what}{size}, and its name and note. It cannot be undone.",
               icon=":material/warning:")
    yes, no, _ = st.columns([1, 1, 2])
    if yes.button("Yes, delete", key=f"runs-del-yes-{run.id}", type="primary", icon=":material/delete:",
                  width="stretch"):
        st.session_state.pop(CONFIRM, None)
        runs.delete(run.id)
        st.toast(f"Deleted {run.id}", icon=":material/delete:")
        st.rerun(scope="app")
    if no.button("Keep it", key=f"runs-del-no-{run.id}", width="stretch"):
        st.session_state.pop(CONFIRM, None)
        st.rerun(scope="app")


def _reopen_link(run: runs.JobStatus) -> None:
    """"Open in …": the page that shows this kind of run, opened on this run (see ``ui.nav.REOPEN``). A training
    opens in any state (its lab shows it live, failed or stopped, with its Resume); a grid or a video opens the
    explorer on its view."""
    if not run.spec:
        return
    try:
        link = nav.reopen_link(run.kind, run.id, run.spec)
    except Exception as exc:  # an old spec the page no longer understands: say so, keep the row usable
        st.caption(f"Cannot reopen this run: {type(exc).__name__}: {exc}")
        return
    if link is None:
        return
    try:
        st.page_link(link.page.file, label=link.label, icon=link.page.icon, query_params=link.query)
    except Exception:  # e.g. a test harness that does not know the other pages
        query = "&".join(f"{k}={v}" for k, v in link.query.items())
        st.caption(f"{link.label} — `{link.page.file}?{query}`")


def checkpoint_words(point: dict) -> str:
    """Where a checkpoint stands, as the trainer counts it: ``"step 150, 3 epochs done"``."""
    step, epochs = point.get("step"), point.get("epoch")
    parts = [f"step {step:,}" if isinstance(step, int) else "an unknown step"]
    if isinstance(epochs, int):
        parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''} done")
    return ", ".join(parts)


def _resume_button(run: runs.JobStatus) -> None:
    """A stopped (cancelled, failed or killed) training whose ``partial/`` holds a checkpoint: continue it."""
    point = resume.resume_point(run)
    if point is None:
        return
    if st.button("Resume", key=f"runs-resume-{run.id}", icon=":material/play_arrow:", type="primary",
                 width="stretch", help=f"Train on from its checkpoint ({checkpoint_words(point)}) as a new run"):
        try:
            new_id = resume.resume(run)
        except ValueError as exc:  # gone or changed since the row was drawn
            st.error(str(exc))
            return
        st.toast(f"Resumed as {new_id}", icon=":material/play_arrow:")
        st.rerun(scope="app")
    st.caption(f"from its checkpoint: {checkpoint_words(point)}")


def _name_editor(run: runs.JobStatus) -> None:
    """"Name and note…": a popover with the run's name and note; Save writes them (``runs.notes``)."""
    saved = notes.read(run.id)
    with st.popover("Name and note…", icon=":material/edit_note:", width="stretch",
                    help="Give this run a name and a note; they are kept with the run, not in its spec"):
        name = st.text_input("Name", value=saved.name, max_chars=notes.MAX_NAME, key=f"runs-name-{run.id}",
                             placeholder="e.g. wide net, lr sweep")
        note = st.text_area("Note", value=saved.note, max_chars=notes.MAX_NOTE, key=f"runs-note-{run.id}",
                            placeholder="What this run was for, what it showed")
        if st.button("Save", key=f"runs-note-save-{run.id}", icon=":material/save:", type="primary"):
            try:
                notes.write(run.id, name=name, note=note)
            except (notes.NoteError, OSError) as exc:
                st.error(str(exc))
                return
            st.toast("Saved the name and note", icon=":material/save:")
            st.rerun(scope="app")
