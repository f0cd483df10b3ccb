"""`gitexp ui`: a local web app over the runs in git, read through the same code as `show`.

`server` wires the HTTP routes (Starlette, served by Uvicorn); `runs` keeps the run table and
answers its queries; `histories`, `details` and `comparison` read what the pages show;
`security` holds the Host check, the headers and the path rules; `static/` is the page, with
its chart library vendored.
"""
