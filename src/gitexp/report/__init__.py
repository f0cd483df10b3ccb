"""The pull-request report (markdown with Mermaid charts, or self-contained HTML) and the CI
workflows that post it."""
