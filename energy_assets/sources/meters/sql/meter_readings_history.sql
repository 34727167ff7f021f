-- meters.meter_readings_history: every revised reading, with when, by which file, old and new value and quality.
-- The publish path's merge keeps each superseded row in meters.meter_readings__history (with superseded_at and
-- the load id); the value that replaced it is the next superseded version of the same key, or the current row.
CREATE OR REPLACE VIEW meters.meter_readings_history AS
SELECT
    h.nmi,
    h.nmi_suffix,
    h.interval_end,
    h.superseded_at,
    h.value AS old_value,
    coalesce(lead(h.value) OVER w, r.value) AS new_value,
    h.quality AS old_quality,
    coalesce(lead(h.quality) OVER w, r.quality) AS new_quality,
    h.source_file AS old_source_file,
    coalesce(lead(h.source_file) OVER w, r.source_file) AS new_source_file,
    h.load_id
FROM meters.meter_readings__history AS h
LEFT JOIN meters.meter_readings AS r USING (nmi, nmi_suffix, interval_end)
WINDOW w AS (PARTITION BY h.nmi, h.nmi_suffix, h.interval_end ORDER BY h.superseded_at, h.load_id)
