-- Per-user, per-month, per-category totals beside the daily ones, kept in the
-- same transaction as every write: a summary reads whole months here and only
-- the days at its edges from daily_totals.
CREATE TABLE monthly_totals (
    user_id      UUID   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    month        DATE   NOT NULL,
    category_key TEXT   NOT NULL,
    total_minor  BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (user_id, month, category_key)
);

INSERT INTO monthly_totals (user_id, month, category_key, total_minor, count)
SELECT user_id, date_trunc('month', spent_on)::date, category_key, SUM(total_minor), SUM(count)
FROM daily_totals
GROUP BY user_id, date_trunc('month', spent_on)::date, category_key
HAVING SUM(count) > 0;
