"""The dashboard's flows in Chromium: log in, find the champion and its evaluation report,
compare two runs, promote through the button and see the Git commit, follow an incident's
timeline and approve its waiting remediation, and a viewer who sees no buttons."""

from __future__ import annotations

import os
import re
import shutil

from tests.e2e.browser.conftest import ROOT, Site, Visit, log_in

ACTION_BUTTONS = ("Promote…", "Set traffic…", "Roll back…", "Approve and run", "Reject")


def test_log_in_find_the_champion_and_open_its_evaluation_report(visit: Visit) -> None:
    log_in(visit, "admin-token")
    page = visit.page
    assert page.get_by_role("heading", name="churn-prod").is_visible()
    overview = visit.shot("overview")
    if os.environ.get("OPSLOOP_README_SCREENSHOT"):  # refresh the README's picture
        shutil.copyfile(overview, ROOT / "docs" / "images" / "overview.png")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    visit.shot("models")
    page.get_by_role("link", name="champion → v1").first.click()
    page.wait_for_url(re.compile(r"/models/churn/versions/1$"))
    visit.shot("champion")
    assert "signed" in page.get_by_role("row", name=re.compile("^Signature")).inner_text()
    page.get_by_role("link", name="Evaluation report").click()
    page.wait_for_url(re.compile(r"/report$"))
    visit.shot("evaluation report")
    assert page.get_by_role("heading", name="Evaluation report").is_visible()


def test_compare_two_runs(visit: Visit, site: Site) -> None:
    log_in(visit, "admin-token")
    visit.go("/runs", "runs")
    for run in site.runs:
        visit.page.locator(f"input[value='{run}']").check()
    visit.page.get_by_role("button", name="Compare selected runs").click()
    visit.page.wait_for_url(re.compile(r"/runs/compare"))
    visit.shot("compare")
    assert visit.page.get_by_role("heading", name="Compare 2 runs").is_visible()
    assert visit.page.locator("tr.differs").count() == 2  # C and model differ
    assert visit.page.locator(".chart .main-svg").count() >= 1  # loss overlaid, drawn
    visit.go(f"/runs/{site.runs[0]}", "run")
    assert visit.page.locator(".chart .main-svg").count() >= 1


def test_promote_through_the_button_makes_a_git_commit(visit: Visit, site: Site) -> None:
    log_in(visit, "admin-token")
    visit.go("/deployments/churn-prod", "deployment")
    visit.page.get_by_label("Promote version").select_option("2")
    visit.page.get_by_role("button", name="Promote…").click()
    visit.shot("confirm promote")
    diff = visit.page.locator("pre.diff").inner_text()
    assert "-version: 1" in diff and "+version: 2" in diff, diff
    visit.page.get_by_role("button", name="Commit: promote").click()
    visit.page.wait_for_url(re.compile(r"/deployments/churn-prod\?commit="))
    visit.shot("promoted")
    sha = visit.page.locator(".notice .commit").inner_text()
    head = site.project.dir
    from tests.gitops.conftest import git  # noqa: PLC0415 - the tests' Git helper

    log = git(head, "log", "-1", "--format=%h %an %s")
    assert log.startswith(sha[:7]) and "alice" in log, log
    first_row = visit.page.locator("section:has(#history) tbody tr").first.inner_text()
    assert sha[:10] in first_row and "alice" in first_row


def test_incident_timeline_and_approve_the_waiting_remediation(visit: Visit, site: Site) -> None:
    log_in(visit, "admin-token")
    visit.go("/incidents", "incidents")
    visit.page.get_by_role("link", name=f"#{site.incident}", exact=True).click()
    visit.page.wait_for_url(re.compile(rf"/incidents/{site.incident}$"))
    visit.shot("incident")
    assert visit.page.locator("ol.timeline li").count() >= 2
    assert visit.page.get_by_role("heading", name="Waiting for approval").is_visible()
    visit.page.get_by_role("button", name="Approve and run").click()
    visit.page.wait_for_url(re.compile(r"\?done="))
    visit.shot("approved")
    assert "notify: succeeded" in visit.page.locator(".notice").inner_text()
    assert site.hook_bodies and site.hook_bodies[-1]["event"] == "remediation"


def test_a_viewer_sees_no_buttons(visit: Visit, site: Site) -> None:
    log_in(visit, "viewer-token")
    for path in (
        "/",
        "/deployments/churn-prod",
        f"/incidents/{site.incident}",
        "/models/churn/versions/1",
        "/monitoring",
        "/data",
        "/audit",
    ):
        visit.go(path)
        for name in (*ACTION_BUTTONS, "Point alias at v1"):
            assert visit.page.get_by_role("button", name=name).count() == 0, (path, name)
    assert "Chain verified" in visit.page.locator("[role=status]").inner_text()
