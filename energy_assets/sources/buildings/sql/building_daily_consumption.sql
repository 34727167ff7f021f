-- marts.building_daily_consumption: per building, meter and day on the dataset's clock.
-- Inputs: meter_readings (buildings.meter_readings rows), site_clock (site_id, utc_offset_minutes; all 0 under
-- BDG2_TIMESTAMP_CONVENTION=utc). The day is the date written in the BDG2 file, whatever the convention.
SELECT
    CAST(timezone('UTC', r."timestamp") + to_minutes(COALESCE(c.utc_offset_minutes, 0)) AS DATE) AS "date",
    r.building_id,
    r.site_id,
    r.meter,
    r.unit,
    SUM(r.reading) AS consumption,
    COUNT(*) AS reading_count,
    MIN(r.reading) AS min_hourly_reading,
    MAX(r.reading) AS max_hourly_reading
FROM meter_readings AS r
LEFT JOIN site_clock AS c USING (site_id)
GROUP BY ALL
ORDER BY r.building_id, r.meter, "date"
