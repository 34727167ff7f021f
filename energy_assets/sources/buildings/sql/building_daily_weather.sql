-- marts.building_daily_weather: per building, meter and day, beside the site's weather that day.
-- Inputs: building_daily_consumption (the mart), weather (buildings.weather), site_clock (site_id,
-- utc_offset_minutes). Parameter: $degree_day_base_c.
-- Degree days by the mean-temperature method: HDD = max(0, base - daily mean), CDD = max(0, daily mean - base),
-- in kelvin-days; NULL on days without any air temperature.
WITH site_days AS (
    SELECT
        w.site_id,
        CAST(timezone('UTC', w."timestamp") + to_minutes(COALESCE(c.utc_offset_minutes, 0)) AS DATE) AS "date",
        AVG(w.air_temperature_c) AS mean_air_temperature_c,
        COUNT(w.air_temperature_c) AS weather_hour_count
    FROM weather AS w
    LEFT JOIN site_clock AS c USING (site_id)
    GROUP BY ALL
)
SELECT
    d."date",
    d.building_id,
    d.site_id,
    d.meter,
    d.unit,
    d.consumption,
    d.reading_count,
    s.mean_air_temperature_c,
    COALESCE(s.weather_hour_count, 0) AS weather_hour_count,
    CASE WHEN s.mean_air_temperature_c IS NOT NULL
        THEN GREATEST(CAST($degree_day_base_c AS DOUBLE) - s.mean_air_temperature_c, 0.0) END AS heating_degree_days,
    CASE WHEN s.mean_air_temperature_c IS NOT NULL
        THEN GREATEST(s.mean_air_temperature_c - CAST($degree_day_base_c AS DOUBLE), 0.0) END AS cooling_degree_days,
    CAST($degree_day_base_c AS DOUBLE) AS degree_day_base_c
FROM building_daily_consumption AS d
LEFT JOIN site_days AS s USING (site_id, "date")
ORDER BY d.building_id, d.meter, d."date"
