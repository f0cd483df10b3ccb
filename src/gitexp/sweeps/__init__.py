"""Sweeps: many runs from one command, in parallel worktrees, queued in git, or on a Dask
cluster; each point is recorded by `gitexp.workflows.run` exactly as one `gitexp run` is."""
