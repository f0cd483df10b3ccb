"""`gitexp ci github|gitlab`: write a CI workflow that posts `gitexp report` on every pull
(merge) request as one comment, updated in place on every push."""

from __future__ import annotations

import shlex
from pathlib import Path

from gitexp.core.query import parse_filter
from gitexp.errors import StateError, UsageError

GITHUB_PATH = ".github/workflows/gitexp.yml"
GITLAB_PATH = ".gitlab-ci.yml"
MARKER = "<!-- gitexp-report -->"  # finds the comment to update on GitLab

GITHUB = """\
# Written by `gitexp ci github`: posts `gitexp report` on each pull request as one comment
# that every push updates. The job fails when a budget (--check) fails{run_note}; a report
# that cannot be built is posted as its error instead, without failing the job.
name: gitexp report

on:
  pull_request:

permissions:
  contents: write  # push the runs this job records to refs/runs/*
  pull-requests: write  # post the report

jobs:
  report:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
          ref: ${{{{ github.event.pull_request.head.sha }}}}  # the branch's commit, not a merge
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: {install}
      - name: Fetch the recorded runs and the data they need
        run: |
          git fetch --no-tags origin '+refs/runs/*:refs/runs/*' || true
          if [ -f .dvc/config ]; then
            gitexp pull origin || echo "::warning::gitexp pull failed: runs may lack DVC data"
            dvc pull --allow-missing || echo "::warning::dvc pull failed: the run may lack its data"
          fi
{run_step}      - name: Build the report
        id: report
        if: always()
        run: |
          set +e
          gitexp report --base "origin/$BASE_REF" {head}{checks}-o gitexp-report.md \\
            2> gitexp-report.err
          status=$?
          cat gitexp-report.err >&2
          if [ "$status" -gt 1 ]; then
            echo "::warning::gitexp report could not be built (exit $status)"
            {{ echo '{marker}'; echo '## gitexp report'; echo
               echo 'The report could not be built:'; echo; echo '```'
               cat gitexp-report.err; echo '```'; }} > gitexp-report.md
          fi
          echo "status=$status" >> "$GITHUB_OUTPUT"
        env:
          BASE_REF: ${{{{ github.base_ref }}}}{head_env}
      - name: Post the report (one comment, updated on every push)
        if: always() && hashFiles('gitexp-report.md') != ''
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          PR: ${{{{ github.event.pull_request.number }}}}
        run: |
          gh pr comment "$PR" --edit-last --body-file gitexp-report.md \\
            || gh pr comment "$PR" --body-file gitexp-report.md
      - name: Fail when a budget failed{run_fail_note}
        if: always() && (steps.report.outputs.status == '1'{run_fail})
        run: exit 1
"""

GITHUB_RUN_STEP = """\
      - name: Run the experiment and push the run
        id: run
        run: |
          set +e
          name="pr-$PR-$(git rev-parse --short HEAD)-$ATTEMPT"
          gitexp run -n "$name" -- {command}
          echo "status=$?" >> "$GITHUB_OUTPUT"
          if git show-ref --verify --quiet "refs/runs/$name"; then
            echo "name=$name" >> "$GITHUB_OUTPUT"
            gitexp push origin "$name" || gitexp push --no-data origin "$name"
          fi
        env:
          PR: ${{{{ github.event.pull_request.number }}}}
          ATTEMPT: ${{{{ github.run_attempt }}}}
"""

GITLAB = """\
# Written by `gitexp ci gitlab`: posts `gitexp report` on each merge request as one note that
# every push updates. Needs a CI/CD variable GITEXP_GITLAB_TOKEN (a token with the api scope).
# The job fails when a budget (--check) fails{run_note}; a report that cannot be built is posted
# as its error instead.
gitexp-report:
  image: python:3.11
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  variables:
    GIT_DEPTH: "0"
  script:
    - git fetch --no-tags origin '+refs/runs/*:refs/runs/*' || true
    - git fetch --no-tags origin "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
    - {install}
    - if [ -f .dvc/config ]; then gitexp pull origin || true; dvc pull --allow-missing || true; fi
{run_step}    - status=0;
      gitexp report --base "origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME" {head}{checks}
      -o gitexp-report.md 2> gitexp-report.err || status=$?;
      cat gitexp-report.err >&2;
      if [ "$status" -gt 1 ]; then
      {{ echo '{marker}'; echo '## gitexp report'; echo; echo 'The report could not be built:';
      echo; echo '```'; cat gitexp-report.err; echo '```'; }} > gitexp-report.md; fi
    - |
      python3 - <<'EOF'
      import json, os, urllib.request
      api = f"{{os.environ['CI_API_V4_URL']}}/projects/{{os.environ['CI_PROJECT_ID']}}"
      notes = f"{{api}}/merge_requests/{{os.environ['CI_MERGE_REQUEST_IID']}}/notes"
      headers = {{"PRIVATE-TOKEN": os.environ["GITEXP_GITLAB_TOKEN"],
                 "Content-Type": "application/json"}}
      body = json.dumps({{"body": open("gitexp-report.md").read()}}).encode()
      def call(url, method="GET", data=None):
          request = urllib.request.Request(url, data=data, headers=headers, method=method)
          with urllib.request.urlopen(request) as response:
              return json.load(response)
      mine = [n for n in call(f"{{notes}}?per_page=100") if "{marker}" in n["body"]]
      if mine:
          call(f"{{notes}}/{{mine[0]['id']}}", "PUT", body)
      else:
          call(notes, "POST", body)
      EOF
    - if [ "$status" = 1 ]{run_fail_gitlab}; then exit 1; fi
"""

GITLAB_RUN_STEP = """\
    - run="mr-$CI_MERGE_REQUEST_IID-$CI_COMMIT_SHORT_SHA-$CI_PIPELINE_ID"; run_status=0;
      gitexp run -n "$run" -- {command} || run_status=$?;
      if git show-ref --verify --quiet "refs/runs/$run"; then
      gitexp push origin "$run" || gitexp push --no-data origin "$run"; else run=""; fi
"""


def render(kind: str, command: str | None, checks: list[str], install: str) -> str:
    """The workflow file. With a command, the job records a run and reports that run
    (`--head`), so the head column is what this pull request's code produced."""
    quoted = "".join(f"--check {shlex.quote(c)} " for c in checks)
    common = {
        "install": install,
        "checks": quoted,
        "marker": MARKER,
        "run_note": ", or the experiment fails" if command else "",
    }
    if kind == "github":
        return GITHUB.format(
            **common,
            run_step=GITHUB_RUN_STEP.format(command=command) if command else "",
            head='${HEAD_RUN:+--head "$HEAD_RUN"} ' if command else "",
            head_env="\n          HEAD_RUN: ${{ steps.run.outputs.name }}" if command else "",
            run_fail=" || steps.run.outputs.status != '0'" if command else "",
            run_fail_note=" or the experiment failed" if command else "",
        )
    if kind == "gitlab":
        return GITLAB.format(
            **common,
            run_step=GITLAB_RUN_STEP.format(command=command) if command else "",
            head='${run:+--head "$run"} ' if command else "",
            run_fail_gitlab=' ] || [ "${run_status:-0}" != 0' if command else "",
        )
    raise UsageError(f"unknown CI '{kind}': use github or gitlab")


def write_workflow(
    root: Path, kind: str, command: str | None, checks: list[str], install: str, force: bool
) -> Path:
    path = root / (GITHUB_PATH if kind == "github" else GITLAB_PATH)
    if path.exists() and not force:
        raise StateError(f"{path.relative_to(root)} exists: use --force to overwrite it")
    if command is not None and "\n" in command:
        raise UsageError("--run takes a one-line command")
    for check in checks:  # as `report --check` would read it in CI, refused here and now
        parse_filter(check)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(kind, command, checks, install))
    return path
