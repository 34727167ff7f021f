-- marts.underperformance_30min: wind and solar in 30-minute buckets against capacity and a trailing baseline.
-- Inputs: public_power, installed_power (energy_charts.installed_power rows), monitored_types (production_type).
-- Parameters: $timezone, $threshold_fraction, $trailing_days, $max_lookback_days.
--
-- Bucket value: the mean of the 15-minute values in the bucket (hourly rows are first expanded to quarter hours).
-- Capacity: the monthly figure for the bucket's local month if published, else the latest yearly figure whose
-- year starts on or before the day.
-- Baseline (expected_mw): the median of the same local wall-clock slot (HH:MM) over the previous
-- $trailing_days days present in the input (gaps skipped), not counting the day itself and none older than
-- $max_lookback_days calendar days, so a baseline never mixes seasons. A bucket is underperforming when
-- mean_mw < threshold_fraction x expected_mw; without a baseline the flag is NULL. At night solar's expected
-- level is 0, so it is never flagged.
WITH quarters AS (
    SELECT country, production_type, quarter_start, value_mw
    FROM (
        SELECT p.*, p.interval_start + to_minutes(15 * unnest(range(0, p.interval_minutes // 15))) AS quarter_start
        FROM public_power AS p
        JOIN monitored_types USING (production_type)
    )
),
buckets AS (
    SELECT
        country,
        production_type,
        to_timestamp(floor(epoch(quarter_start) / 1800) * 1800) AS bucket_start,
        AVG(value_mw) AS mean_mw,
        COUNT(value_mw) AS quarter_hour_count
    FROM quarters
    GROUP BY ALL
),
located AS (
    SELECT
        *,
        CAST(timezone($timezone, bucket_start) AS DATE) AS local_date,
        strftime(timezone($timezone, bucket_start), '%H:%M') AS local_slot
    FROM buckets
),
numbered AS (
    SELECT *, dense_rank() OVER (PARTITION BY country, production_type ORDER BY local_date) AS day_number
    FROM located
),
monthly AS (
    SELECT country, lower(production_type) AS type_key, period_start, capacity_gw
    FROM installed_power
    WHERE time_step = 'monthly' AND capacity_gw IS NOT NULL
),
yearly AS (
    SELECT country, lower(production_type) AS type_key, period_start, capacity_gw
    FROM installed_power
    WHERE time_step = 'yearly' AND capacity_gw IS NOT NULL
),
with_capacity AS (
    SELECT
        n.*,
        COALESCE(m.capacity_gw, y.capacity_gw) AS installed_gw,
        CASE WHEN m.capacity_gw IS NOT NULL THEN 'monthly' WHEN y.capacity_gw IS NOT NULL THEN 'yearly' END
            AS capacity_time_step
    FROM numbered AS n
    LEFT JOIN monthly AS m
        ON m.country = n.country
        AND m.type_key = lower(n.production_type)
        AND m.period_start = date_trunc('month', n.local_date)
    ASOF LEFT JOIN yearly AS y
        ON y.country = n.country
        AND y.type_key = lower(n.production_type)
        AND n.local_date >= y.period_start
),
baselines AS (
    SELECT
        t.country,
        t.production_type,
        t.bucket_start,
        median(b.mean_mw) AS expected_mw,
        COUNT(DISTINCT b.local_date) FILTER (WHERE b.mean_mw IS NOT NULL) AS baseline_day_count
    FROM with_capacity AS t
    LEFT JOIN with_capacity AS b
        ON b.country = t.country
        AND b.production_type = t.production_type
        AND b.local_slot = t.local_slot
        AND b.day_number BETWEEN t.day_number - $trailing_days AND t.day_number - 1
        AND b.local_date >= t.local_date - CAST($max_lookback_days AS INTEGER)
    GROUP BY ALL
),
with_baseline AS (
    SELECT with_capacity.*, baselines.expected_mw, baselines.baseline_day_count
    FROM with_capacity
    JOIN baselines USING (country, production_type, bucket_start)
)
SELECT
    country,
    production_type,
    bucket_start,
    local_date,
    local_slot,
    mean_mw,
    quarter_hour_count,
    installed_gw,
    capacity_time_step,
    mean_mw / NULLIF(installed_gw * 1000.0, 0) AS capacity_factor,
    expected_mw,
    baseline_day_count,
    $threshold_fraction AS threshold_fraction,
    CASE
        WHEN expected_mw IS NULL OR mean_mw IS NULL THEN NULL
        ELSE mean_mw < $threshold_fraction * expected_mw
    END AS is_underperforming
FROM with_baseline
ORDER BY country, production_type, bucket_start
