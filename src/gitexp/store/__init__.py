"""Git as the database: the plumbing (the only module that runs git), run records and
listings, snapshots of revisions and the workspace, the journal and run lock."""
