-- marts.site_usage_daily_consumption: per site, primary space usage, meter and day.
-- Inputs: building_daily_consumption (the mart), metadata (buildings.metadata). Buildings without a
-- primaryspaceusage in the metadata (or missing from it) count as `Unknown`.
SELECT
    d."date",
    d.site_id,
    COALESCE(m.primaryspaceusage, 'Unknown') AS primaryspaceusage,
    d.meter,
    d.unit,
    SUM(d.consumption) AS consumption,
    COUNT(DISTINCT d.building_id) AS building_count,
    SUM(d.reading_count) AS reading_count
FROM building_daily_consumption AS d
LEFT JOIN metadata AS m USING (building_id)
GROUP BY ALL
ORDER BY d.site_id, primaryspaceusage, d.meter, d."date"
