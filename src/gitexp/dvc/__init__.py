"""Everything DVC: pointer files, the cache, transfers to and from DVC remotes. The only
sub-package that imports DVC, and only inside the functions that handle data."""
