"""`gitexp ci github|gitlab`: write a CI workflow that posts `gitexp report` on every pull
(merge) request as one comment, updated in place on every push."""

from __future__ import annotations

import shlex
from pathlib import Path

from gitexp.errors import StateError, UsageError

GITHUB_PATH = ".github/workflows/gitexp.yml"
GITLAB_PATH = ".gitlab-ci.yml"
MARKER = "<!-- gitexp-report -->"  # finds the comment to update on GitLab

GITHUB = """\
# Written by `gitexp ci github`: posts `gitexp report` on each pull request as one comment
# that every push updates. Budgets (--check) that fail make this job fail after posting.
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
      - name: Fetch the recorded runs
        run: git fetch --no-tags origin '+refs/runs/*:refs/runs/*' || true
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: {install}
{run_step}      - name: Build the report
        id: report
        run: |
          set +e
          gitexp report --base "origin/$BASE_REF" {checks}-o gitexp-report.md
          echo "status=$?" >> "$GITHUB_OUTPUT"
        env:
          BASE_REF: ${{{{ github.base_ref }}}}
      - name: Post the report (one comment, updated on every push)
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          PR: ${{{{ github.event.pull_request.number }}}}
        run: |
          gh pr comment "$PR" --edit-last --body-file gitexp-report.md \\
            || gh pr comment "$PR" --body-file gitexp-report.md
      - name: Fail when a budget failed
        if: steps.report.outputs.status != '0'
        run: exit 1
"""

GITHUB_RUN_STEP = """\
      - name: Run the experiment and push the run
        run: |
          gitexp run -n "pr-$PR-$(git rev-parse --short HEAD)-$ATTEMPT" -- {command}
          gitexp push origin
        env:
          PR: ${{{{ github.event.pull_request.number }}}}
          ATTEMPT: ${{{{ github.run_attempt }}}}
"""

GITLAB = """\
# Written by `gitexp ci gitlab`: posts `gitexp report` on each merge request as one note that
# every push updates. Needs a CI/CD variable GITEXP_GITLAB_TOKEN (a token with the api scope).
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
{run_step}    - status=0;
      gitexp report --base "origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME" {checks}-o gitexp-report.md
      || status=$?
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
    - exit "$status"
"""

GITLAB_RUN_STEP = """\
    - gitexp run -n "mr-$CI_MERGE_REQUEST_IID-$CI_COMMIT_SHORT_SHA-$CI_PIPELINE_ID" -- {command}
    - gitexp push origin
"""


def render(kind: str, command: str | None, checks: list[str], install: str) -> str:
    quoted = "".join(f"--check {shlex.quote(c)} " for c in checks)
    if kind == "github":
        run_step = GITHUB_RUN_STEP.format(command=command) if command else ""
        return GITHUB.format(install=install, run_step=run_step, checks=quoted)
    if kind == "gitlab":
        run_step = GITLAB_RUN_STEP.format(command=command) if command else ""
        return GITLAB.format(install=install, run_step=run_step, checks=quoted, marker=MARKER)
    raise UsageError(f"unknown CI '{kind}': use github or gitlab")


def write_workflow(
    root: Path, kind: str, command: str | None, checks: list[str], install: str, force: bool
) -> Path:
    path = root / (GITHUB_PATH if kind == "github" else GITLAB_PATH)
    if path.exists() and not force:
        raise StateError(f"{path.relative_to(root)} exists: use --force to overwrite it")
    if command is not None and "\n" in command:
        raise UsageError("--run takes a one-line command")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(kind, command, checks, install))
    return path
