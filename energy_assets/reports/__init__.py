"""Reports built from the published marts (no Dagster): `html_report` renders the static platform report."""
