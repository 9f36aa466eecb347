"""Real sample data bundled with rdet (DOTA, DOTA8, DIOR-R, HRSC; provenance and licences in
LICENSE_NOTICE.md). Installed as ``rdet.samples``; :func:`rdet.resources.samples_dir` returns its folder."""
