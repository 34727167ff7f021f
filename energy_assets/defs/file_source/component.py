"""A source of users' own files as a Dagster component: what an operator declares in a `defs.yaml`.

Keep asset logic out of this module. The attributes are `energy_assets.sources.files.declaration`'s model
(validated there, so a wrong attribute is refused naming the file, line and attribute); `build_defs` hands
the declaration to `file_source_definitions`. `energy-assets source add NAME --sample FILE` writes one of
these from a sample file into `$ENERGY_ASSETS_SOURCES_DIR/NAME/defs.yaml`.

Everything the instance owns is named after `name`: asset keys `raw/<name>/files` and `<name>/records`,
PostgreSQL `<name>.records` (and `<name>.ingested_files`, `<name>.protected_values`), the inbox
`<data home>/inbox/<name>/`, the sensor `<name>_inbox_sensor`, the job `<name>_ingest_job`, the resource
`<name>_files`; declared marts are `marts.<mart name>`.
"""

from __future__ import annotations

import dagster as dg

from energy_assets.sources.files.declaration import FileSourceDeclaration


class FileSource(dg.Component, FileSourceDeclaration, dg.Resolvable):
    """Users' own CSV files dropped into an inbox: read as declared (types, local times, sensitive columns),
    audited, merged on the natural key with history into <name>.records, with declared marts."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from energy_assets.defs.file_source import file_source_definitions

        return file_source_definitions(FileSourceDeclaration.model_validate(self.model_dump()))
