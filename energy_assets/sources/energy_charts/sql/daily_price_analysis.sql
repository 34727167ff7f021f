-- marts.daily_price_analysis: per local day and bidding zone.
-- Inputs: day_ahead_price (energy_charts.day_ahead_price rows), public_power (energy_charts.public_power rows),
-- zone_countries (bidding_zone, country). Parameters: $timezone, $wind_onshore, $wind_offshore (series names).
-- Prices are weighted by interval length, so a day mixing hourly and quarter-hourly prices averages right.
-- The correlation pairs price and total wind power on a common 15-minute grid: an hourly value is expanded to
-- its four quarter hours (a price holds for the whole hour; a MW value is an average over the interval).
WITH prices AS (
    SELECT
        bidding_zone,
        CAST(timezone($timezone, interval_start) AS DATE) AS local_date,
        SUM(price_eur_per_mwh * interval_minutes)
            / NULLIF(SUM(interval_minutes) FILTER (WHERE price_eur_per_mwh IS NOT NULL), 0) AS mean_price_eur_per_mwh,
        MIN(price_eur_per_mwh) AS min_price_eur_per_mwh,
        MAX(price_eur_per_mwh) AS max_price_eur_per_mwh,
        COUNT(price_eur_per_mwh) AS price_interval_count,
        COUNT(*) FILTER (WHERE price_eur_per_mwh < 0) AS negative_price_interval_count
    FROM day_ahead_price
    GROUP BY ALL
),
wind AS (
    SELECT *
    FROM public_power
    WHERE production_type IN ($wind_onshore, $wind_offshore)
),
wind_days AS (
    SELECT
        country,
        CAST(timezone($timezone, interval_start) AS DATE) AS local_date,
        SUM(value_mw * interval_minutes / 60.0) FILTER (WHERE production_type = $wind_onshore) AS wind_onshore_mwh,
        SUM(value_mw * interval_minutes / 60.0) FILTER (WHERE production_type = $wind_offshore) AS wind_offshore_mwh
    FROM wind
    GROUP BY ALL
),
price_grid AS (
    SELECT bidding_zone, interval_start + to_minutes(15 * quarter) AS quarter_start, price_eur_per_mwh
    FROM (
        SELECT *, unnest(range(0, interval_minutes // 15)) AS quarter
        FROM day_ahead_price
        WHERE price_eur_per_mwh IS NOT NULL
    )
),
wind_grid AS (
    SELECT country, quarter_start, SUM(value_mw) AS wind_mw
    FROM (
        SELECT *, interval_start + to_minutes(15 * unnest(range(0, interval_minutes // 15))) AS quarter_start
        FROM wind
        WHERE value_mw IS NOT NULL
    )
    GROUP BY ALL
),
paired AS (
    SELECT
        p.bidding_zone,
        CAST(timezone($timezone, p.quarter_start) AS DATE) AS local_date,
        p.price_eur_per_mwh,
        w.wind_mw
    FROM price_grid AS p
    JOIN zone_countries AS z USING (bidding_zone)
    JOIN wind_grid AS w ON w.country = z.country AND w.quarter_start = p.quarter_start
),
correlations AS (
    SELECT
        bidding_zone,
        local_date,
        COUNT(*) AS correlation_point_count,
        CASE
            WHEN COUNT(*) >= 2 AND var_pop(price_eur_per_mwh) > 0 AND var_pop(wind_mw) > 0
            THEN corr(price_eur_per_mwh, wind_mw)
        END AS price_wind_correlation
    FROM paired
    GROUP BY ALL
)
SELECT
    p.local_date,
    p.bidding_zone,
    z.country,
    p.mean_price_eur_per_mwh,
    p.min_price_eur_per_mwh,
    p.max_price_eur_per_mwh,
    p.price_interval_count,
    p.negative_price_interval_count,
    w.wind_onshore_mwh,
    w.wind_offshore_mwh,
    COALESCE(c.correlation_point_count, 0) AS correlation_point_count,
    c.price_wind_correlation
FROM prices AS p
LEFT JOIN zone_countries AS z USING (bidding_zone)
LEFT JOIN wind_days AS w ON w.country = z.country AND w.local_date = p.local_date
LEFT JOIN correlations AS c ON c.bidding_zone = p.bidding_zone AND c.local_date = p.local_date
ORDER BY p.local_date, p.bidding_zone
