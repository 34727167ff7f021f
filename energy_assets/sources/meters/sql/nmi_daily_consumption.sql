-- marts.nmi_daily_consumption: per NMI, suffix and local day (Australia/Brisbane, UTC+10 all year).
-- Input relation `readings` has the columns of meters.meter_readings. Only energy channels (units ending in
-- "h": Wh, kWh, MWh, VArh, kVArh, ...) are summed; power, voltage and power-factor channels are left out.
-- A day belongs to the local date of the interval START, so the interval ending at 00:00 closes the previous
-- day. expected_interval_count is a full day at the channel's (shortest) interval length.
SELECT
    CAST(timezone('Australia/Brisbane', interval_start) AS DATE) AS local_date,
    nmi,
    nmi_suffix,
    min(uom) AS uom,
    sum(value) AS consumption,
    count(*) AS interval_count,
    CAST(1440 / min(date_diff('minute', interval_start, interval_end)) AS BIGINT) AS expected_interval_count,
    count(*) FILTER (WHERE quality = 'A') / count(*) AS actual_share,
    count(*) FILTER (WHERE quality IN ('E', 'F', 'S')) / count(*) AS estimated_or_substituted_share
FROM readings
WHERE uom IS NOT NULL AND right(uom, 1) = 'h'
GROUP BY ALL
ORDER BY nmi, nmi_suffix, local_date
