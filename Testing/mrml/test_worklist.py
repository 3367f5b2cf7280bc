"""The cohort review worklist on three real output folders (analytic model, phantoms).

The folders are written once per module by the real pipeline (`uncertaintyseg predict`
through its CLI entry point), each test works on its own copy. Ranking is checked
against the scores in the reports, reviews against review.json read back from disk.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mrml_helpers import SLICER_CORE, orphan_helper_nodes
from UncertaintySegLib import worklist as wl

SMALL = ["--model", "analytic", "--projections", "3", "--kernel-mm", "12", "12", "24",
         "--max-boxes", "2", "--batch-size", "3", "--no-snapshot", "--progress", "none",
         "--device", "cpu", "--threads", "1"]
CASES = ((1, "brats2018"), (2, "brats2018"), (3, "brats2023"))  # (seed, naming)


@pytest.fixture(scope="module")
def cohort_source(tmp_path_factory) -> Path:
    """OUT/<case>/ for three phantom cases, as the pipeline writes them."""
    pytest.importorskip("torch", reason="writing the output folders runs the pipeline (torch)")
    from uncertaintyseg.commands import cli
    from uncertaintyseg.files.phantom import write_phantom_case

    root = tmp_path_factory.mktemp("worklist")
    out = root / "out"
    for seed, naming in CASES:
        case = write_phantom_case(root / "inputs", seed=seed, shape=(20, 48, 40), naming=naming)
        assert cli.main(["predict", "--case", str(case), "--out", str(out / case.name),
                         *SMALL]) == 0
    return out


@pytest.fixture
def cohort(cohort_source, tmp_path) -> Path:
    """A private copy (the inputs stay where the reports say they are)."""
    return Path(shutil.copytree(cohort_source, tmp_path / "out"))


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def _review(folder: Path) -> dict:
    return json.loads((folder / wl.REVIEW_FILE).read_text(encoding="utf-8"))


def _read(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def test_cases_are_ranked_by_triage_score_with_their_volumes(cohort):
    rows = wl.scan(cohort)
    scores = {p.name: _report(p)["triage"]["score"] for p in cohort.iterdir()}
    assert len(set(scores.values())) == 3, "the phantoms should differ in triage score"
    assert [r.case for r in rows] == sorted(scores, key=scores.get, reverse=True)
    for row in rows:
        report = _report(row.folder)
        assert row.triage_score == pytest.approx(report["triage"]["score"])
        assert row.volumes_ml == report["volumes_ml"] and row.state == wl.TO_REVIEW
        assert row.boxes_total == sum(report["boxes_per_region"].values()) > 0
    assert wl.next_case(rows).case == rows[0].case
    assert wl.next_case(rows, current=rows[0].case).case == rows[1].case
    # One output folder opened directly is a one-case worklist.
    assert [r.case for r in wl.scan(rows[2].folder)] == [rows[2].case]
    assert wl.summary(rows) == "3 cases: 3 to review"
    assert {r.report["input"]["label_convention"] for r in rows} == {"brats2018", "brats2023"}
    table = wl.table_cells(rows)
    assert [t[:2] for t in table] == [(str(i), r.case) for i, r in enumerate(rows, start=1)]
    assert table[0][2] == f"{rows[0].triage_score:.4f}" and table[0][-2] == wl.TO_REVIEW
    assert table[0][7] == f"0 / {rows[0].boxes_total}"
    top = _report(rows[0].folder)["quality"]
    assert rows[0].quality_flag == top["flag"] and table[0][3].startswith(top["flag"])
    assert len(table[0]) == len(wl.TABLE_COLUMNS)


def test_flagged_cases_come_first_then_the_lowest_estimated_dice():
    rows = [wl.CaseRow("A", Path("a"), triage_score=0.9, quality_flag="routine",
                       estimated_dice=0.9),
            wl.CaseRow("B", Path("b"), triage_score=0.1, quality_flag="review",
                       estimated_dice=0.8),
            wl.CaseRow("C", Path("c"), triage_score=0.2, quality_flag="review",
                       estimated_dice=0.4),
            wl.CaseRow("D", Path("d"), triage_score=0.5),       # an older report
            wl.CaseRow("E", Path("e"))]                         # no score at all
    assert [r.case for r in wl.rank(rows)] == ["C", "B", "A", "D", "E"]


def test_cohort_table_missing_and_broken_cases_are_reported_not_fatal(cohort):
    names = sorted(p.name for p in cohort.iterdir())
    from uncertaintyseg.cohorts.cohort_table import COHORT_COLUMNS, DONE, FAILED

    # The header and statuses of the table `predict --cases` writes.
    table = [",".join(COHORT_COLUMNS)]
    row = {c: "" for c in COHORT_COLUMNS}
    for case, status in [*((n, DONE) for n in names), ("Lost_0009", DONE),
                         ("Bad_0007", FAILED)]:
        table.append(",".join({**row, "case": case, "status": status}.values()))
    (cohort / wl.COHORT_TABLE).write_text("\n".join(table) + "\n")
    (cohort / names[0] / "report.json").write_text("{ not json")
    (cohort / names[1] / "refinement_boxes.json").unlink()
    (cohort / ".Other.partial-1234").mkdir()      # a run still being written: not a case
    (cohort / "notes").mkdir()                    # not a case, not in the table

    rows = wl.scan(cohort)
    by_case = {r.case: r for r in rows}
    assert set(by_case) == {*names, "Lost_0009", "Bad_0007"}
    assert by_case[names[0]].state == wl.BROKEN and "unreadable report.json" in by_case[names[0]].problem
    assert by_case[names[1]].state == wl.BROKEN and "refinement_boxes.json" in by_case[names[1]].problem
    assert by_case["Lost_0009"].state == wl.FAILED and "missing" in by_case["Lost_0009"].problem
    assert "reported 'failed'" in by_case["Bad_0007"].problem
    assert rows[0].case == names[2] and all(not r.loadable for r in rows[1:])
    assert wl.next_case(rows).case == names[2]
    assert wl.next_case(rows, current=names[2]) is None
    written = list(csv.DictReader(wl.worklist_csv_text(rows).splitlines()))
    assert [w["case"] for w in written] == [r.case for r in rows]
    assert written[-1]["problem"] and written[0]["state"] == wl.TO_REVIEW


def test_review_file_is_written_atomically(tmp_path, monkeypatch):
    record = wl.ReviewRecord("Case_1", reviewer="ann")
    wl.write_review(tmp_path, record)
    assert _review(tmp_path)["reviewer"] == "ann" and _leftovers(tmp_path) == []

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wl.output_safety.os, "replace", refuse)
    with pytest.raises(wl.WorklistError, match="No space"):
        wl.write_review(tmp_path, wl.ReviewRecord("Case_1", reviewer="bob"))
    assert _review(tmp_path)["reviewer"] == "ann" and _leftovers(tmp_path) == []
    with pytest.raises(wl.WorklistError, match="cannot write .*missing"):
        wl.write_text_atomic(tmp_path / "missing" / "x.json", "{}")
    (tmp_path / wl.REVIEW_FILE).write_text("[1, 2]")
    with pytest.raises(wl.WorklistError, match="unreadable review file"):
        wl.read_review(tmp_path)


# ---- the scene side (slicer-core) ------------------------------------------------------

def _session(logics, cohort, reviewer="ann"):
    from UncertaintySegLib.worklist_scene import WorklistSession

    return WorklistSession(logics, cohort, reviewer=reviewer)


def _erase_et(logics, case):
    """An edit as the Segment Editor makes one: ET loses the voxels of its lower half (z)."""
    from test_export import _replace_segment

    labels = _read(case.run.output_dir / "segmentation.nii.gz")
    et = labels == (3 if case.run.convention == "brats2023" else 4)
    kept = et.copy()
    kept[: labels.shape[0] // 2] = False
    _replace_segment(logics, case.run.segmentation, "ET", kept, case.inputs.reference)
    expected = labels.copy()
    expected[et & ~kept] = 0
    assert (expected != labels).sum() > 10
    return expected


def test_ticks_edits_and_export_are_recorded(logics, cohort):
    pytest.importorskip("slicer", reason=SLICER_CORE)
    from UncertaintySegLib.review import box_rows, set_reviewed

    session = _session(logics, cohort)
    # The BraTS 2023 case: ET = 3 must survive the edit-detection and export round trip.
    top = next(r for r in session.rows if r.report["input"]["label_convention"] == "brats2023")
    case = session.open(top.case)
    assert set(case.inputs.nodes) == {"flair", "t1", "t1ce", "t2"} and not case.inputs.note
    assert case.run.reference_volume is case.inputs.reference
    review = _review(top.folder)
    assert review["reviewer"] == "ann" and review["state"] == wl.IN_REVIEW and review["opened_at"]
    assert review["boxes_total"] == top.boxes_total and review["boxes_ticked"] == []
    assert case.run.segmentation.GetAttribute("UncertaintySeg.ReviewState") == wl.IN_REVIEW

    rows = box_rows(case.run.boxes, case.run.rois)
    set_reviewed(rows[0], True)                   # what the box table's tick does
    ticked = _review(top.folder)["boxes_ticked"]
    assert ticked == [{"region": rows[0].region, "rank": rows[0].rank}]
    assert session.save().edited is False

    expected = _erase_et(logics, case)
    assert session.save().edited is True and _review(top.folder)["state"] == wl.IN_REVIEW
    path = session.export_labels(top.folder / "reviewed.nii.gz")
    np.testing.assert_array_equal(_read(path), expected)
    review = _review(top.folder)
    assert review["state"] == wl.CORRECTED and review["corrected"] and review["edited"]
    assert review["exports"][-1] == {"path": str(path), "at": review["updated_at"],
                                     "edited": True, "reviewer": "ann"}
    assert [e["event"] for e in review["history"]][:2] == ["opened", "1 of "
                                                           f"{top.boxes_total} boxes ticked"]
    folder_item = case.run.folder_item
    sh = logics.scene.GetSubjectHierarchyNode()
    assert sh.GetItemAttribute(folder_item, "UncertaintySeg.Corrected") == "1"
    assert case.run.segmentation.GetAttribute("UncertaintySeg.Reviewer") == "ann"
    assert _leftovers(cohort) == []


def test_load_next_walks_the_ranking_and_a_new_session_resumes(logics, cohort):
    pytest.importorskip("slicer", reason=SLICER_CORE)
    from UncertaintySegLib.scene import run_folders

    nodes_before = {logics.scene.GetNthNode(i).GetID()
                    for i in range(logics.scene.GetNumberOfNodes())}
    session = _session(logics, cohort, reviewer="ann")
    order = [r.case for r in session.rows]
    first = session.open_next()
    assert first.row.case == order[0]
    session.mark_reviewed()
    second = session.open_next()
    assert second.row.case == order[1] and len(run_folders(logics.scene)) == 1
    assert logics.scene.GetFirstNodeByName(f"{order[0]}_flair") is None  # closed with it
    for roi in second.run.rois:
        roi.SetAttribute("UncertaintySeg.Reviewed", "1")
    assert _review(second.row.folder)["state"] == wl.REVIEWED   # all boxes ticked
    third = session.open_next()
    assert third.row.case == order[2] and session.next_row() is None
    session.refresh()                                        # the open case keeps its row
    assert third.row in session.rows and third.row.state == wl.IN_REVIEW
    session.close()
    assert run_folders(logics.scene) == [] and session.current is None
    # Every case's nodes went with their display and storage nodes (review m1); only the
    # shared colour tables stay.
    assert orphan_helper_nodes(logics.scene) == []
    left = {logics.scene.GetNthNode(i) for i in range(logics.scene.GetNumberOfNodes())}
    assert {n.GetClassName() for n in left if n.GetID() not in nodes_before} <= {
        "vtkMRMLColorTableNode"}

    again = _session(logics, cohort, reviewer="bob")
    assert [r.state for r in again.rows] == [wl.REVIEWED, wl.REVIEWED, wl.IN_REVIEW]
    assert again.open_next().row.case == order[2]
    reopened = again.open(order[1])
    ticks = {roi.GetAttribute("UncertaintySeg.Reviewed") for roi in reopened.run.rois}
    assert ticks == {"1"}                                     # restored from review.json
    history = _review(reopened.row.folder)["history"]
    assert [h["reviewer"] for h in history][0] == "ann" and history[-1]["reviewer"] == "bob"

    path = again.write_csv()
    written = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    assert [w["case"] for w in written] == order and [w["rank"] for w in written] == ["1", "2", "3"]
    assert [w["state"] for w in written] == [wl.REVIEWED, wl.REVIEWED, wl.IN_REVIEW]
    assert written[0]["reviewer"] == "ann" and written[1]["reviewer"] == "bob"
    assert written[1]["boxes_ticked"] == written[1]["boxes_total"]
    assert _leftovers(cohort) == []


def test_a_case_whose_inputs_moved_still_loads_and_says_so(logics, cohort):
    pytest.importorskip("slicer", reason=SLICER_CORE)
    session = _session(logics, cohort)
    row = session.rows[1]
    flair = Path(row.report["input"]["paths"]["flair"])
    moved = flair.parent.with_name(flair.parent.name + "-moved")
    flair.parent.rename(moved)
    try:
        case = session.open(row.case)
    finally:
        moved.rename(flair.parent)
    assert case.inputs.nodes == {} and case.run.reference_volume is None
    assert "not found (moved or deleted?)" in case.inputs.note and str(flair) in case.inputs.note
    assert case.run.segmentation.GetSegmentation().GetNumberOfSegments() == 3
    # An unedited export is recorded, but is no correction.
    path = session.export_labels()
    np.testing.assert_array_equal(_read(path), _read(row.folder / "segmentation.nii.gz"))
    review = _review(row.folder)
    assert review["exports"][-1]["edited"] is False and review["state"] == wl.IN_REVIEW
    with pytest.raises(wl.WorklistError, match="Lost: not in the worklist"):
        session.open("Lost")


def test_an_input_replaced_by_another_grid_is_not_used(logics, cohort, tmp_path):
    pytest.importorskip("slicer", reason=SLICER_CORE)
    import SimpleITK as sitk

    folder = wl.scan(cohort)[0].folder
    report = _report(folder)
    other = tmp_path / "other_t2.nii.gz"
    sitk.WriteImage(sitk.Image(8, 9, 10, sitk.sitkFloat32), str(other))
    report["input"]["paths"]["t2"] = str(other)
    (folder / "report.json").write_text(json.dumps(report))
    case = _session(logics, cohort).open(folder.name)
    assert set(case.inputs.nodes) == {"flair", "t1", "t1ce"}
    assert "another grid" in case.inputs.note and str(other) in case.inputs.note
    assert case.run.reference_volume is case.inputs.nodes["flair"]
    assert logics.scene.GetFirstNodeByName("other_t2") is None


def test_a_review_that_cannot_be_saved_keeps_the_case_open(logics, cohort, monkeypatch):
    pytest.importorskip("slicer", reason=SLICER_CORE)
    from UncertaintySegLib import worklist_scene
    from UncertaintySegLib.scene import run_folders

    session = _session(logics, cohort)
    case = session.open_next()

    def refuse(folder, record):
        raise wl.WorklistError(f"cannot write {folder / wl.REVIEW_FILE}: read-only")

    monkeypatch.setattr(worklist_scene, "write_review", refuse)
    with pytest.raises(wl.WorklistError, match="read-only"):
        session.open_next()
    assert session.current is case and run_folders(logics.scene) == [case.run.folder_item]
    assert logics.scene.IsNodePresent(case.run.segmentation)


def test_whoever_shows_a_case_hears_when_it_closes(logics, cohort):
    """Review W3: when the case closes (next case, a new folder, the scene closing), the
    module is told, so it never keeps showing a box table whose ticks go nowhere."""
    pytest.importorskip("slicer", reason=SLICER_CORE)

    session = _session(logics, cohort)
    closed = []
    session.on_closed = lambda case: closed.append(case.row.case)
    first = session.open_next()
    second = session.open_next()                       # closes the first
    session.close(remove_nodes=False)                  # what closing the scene does
    assert closed == [first.row.case, second.row.case] and session.current is None
    session.forget()                                   # nothing open: nothing to say
    assert len(closed) == 2


def test_only_a_confirmed_existing_other_folder_is_opened(cohort, tmp_path):
    from UncertaintySegLib.worklist_scene import folder_to_open

    assert folder_to_open(str(cohort)) == cohort
    assert folder_to_open(f" {cohort} ") == cohort
    assert folder_to_open(str(cohort), open_folder=cohort) is None   # already open
    assert folder_to_open(str(cohort)[:-2]) is None                  # half typed
    assert folder_to_open("") is None and folder_to_open(str(tmp_path / "x")) is None
    assert folder_to_open(str(tmp_path), open_folder=cohort) == tmp_path
