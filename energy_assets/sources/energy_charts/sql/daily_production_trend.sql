-- marts.daily_production_trend: per local day, country and production type.
-- Inputs: public_power (energy_charts.public_power rows), production_type_classes (production_type,
-- is_generation, is_renewable). Parameter: $timezone (the local day, Europe/Berlin).
-- Energy is MW x interval hours, so 15-minute and hourly rows weigh correctly; NULL values are skipped.
WITH per_type AS (
    SELECT
        CAST(timezone($timezone, interval_start) AS DATE) AS local_date,
        country,
        production_type,
        SUM(value_mw * interval_minutes / 60.0) AS energy_mwh,
        SUM(value_mw * interval_minutes) / NULLIF(SUM(interval_minutes) FILTER (WHERE value_mw IS NOT NULL), 0)
            AS mean_mw,
        MIN(value_mw) AS min_mw,
        MAX(value_mw) AS max_mw,
        COUNT(value_mw) AS interval_count
    FROM public_power
    GROUP BY ALL
),
classified AS (
    SELECT per_type.*, classes.is_generation, classes.is_renewable
    FROM per_type
    JOIN production_type_classes AS classes USING (production_type)
),
day_totals AS (
    SELECT
        local_date,
        country,
        SUM(energy_mwh) FILTER (WHERE is_generation) AS generation_mwh,
        SUM(energy_mwh) FILTER (WHERE is_generation AND is_renewable) AS renewable_mwh
    FROM classified
    GROUP BY ALL
)
SELECT
    c.local_date,
    c.country,
    c.production_type,
    c.is_generation,
    c.is_renewable,
    c.energy_mwh,
    c.mean_mw,
    c.min_mw,
    c.max_mw,
    c.interval_count,
    CASE WHEN c.is_generation AND d.generation_mwh > 0 THEN 100.0 * c.energy_mwh / d.generation_mwh END
        AS share_of_generation_percent,
    CASE WHEN d.generation_mwh > 0 THEN 100.0 * COALESCE(d.renewable_mwh, 0) / d.generation_mwh END
        AS renewable_share_of_generation_percent
FROM classified AS c
JOIN day_totals AS d USING (local_date, country)
ORDER BY c.local_date, c.country, c.production_type
