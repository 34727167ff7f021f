-- marts.building_energy_use_intensity: per building and calendar year (dataset clock).
-- Inputs: building_daily_consumption (the mart), metadata (buildings.metadata). Parameter: $eui_meters, the
-- consumption meters in kWh that count (electricity, chilledwater, steam, hotwater, gas).
-- EUI = energy_kwh / sqm, NULL where the floor area is missing or zero.
WITH yearly AS (
    SELECT
        CAST(year(d."date") AS INTEGER) AS "year",
        d.building_id,
        d.site_id,
        SUM(d.consumption) AS energy_kwh,
        COALESCE(SUM(d.consumption) FILTER (WHERE d.meter = 'electricity'), 0) AS electricity_kwh,
        COUNT(DISTINCT d.meter) AS meter_count,
        SUM(d.reading_count) AS reading_count
    FROM building_daily_consumption AS d
    WHERE list_contains($eui_meters, d.meter)
    GROUP BY ALL
)
SELECT
    y."year",
    y.building_id,
    y.site_id,
    m.primaryspaceusage,
    m.sqm,
    y.energy_kwh,
    y.electricity_kwh,
    y.meter_count,
    y.reading_count,
    CASE WHEN m.sqm > 0 THEN y.energy_kwh / m.sqm END AS eui_kwh_per_m2
FROM yearly AS y
LEFT JOIN metadata AS m USING (building_id)
ORDER BY y.building_id, y."year"
