-- The web dashboard: its users (argon2id password hashes, one role each, scoped to one
-- retailer or one operator where the role says so), their server-side sessions (only a hash of
-- the cookie's token is stored), and a notification on every alarm change so that dashboards
-- on any server show alarms live.

CREATE TABLE dashboard_users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    role           text NOT NULL CHECK (role IN ('admin', 'manager', 'retailer_manager', 'operator_user', 'auditor')),
    retailer_id    text REFERENCES retailers (id),
    operator_id    text REFERENCES operators (id),
    password_hash  text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    failed_logins  integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),  -- since the last success
    locked_until   timestamptz,
    disabled_at    timestamptz,
    created_at     timestamptz NOT NULL,
    CHECK ((role = 'retailer_manager') = (retailer_id IS NOT NULL)),
    CHECK ((role = 'operator_user') = (operator_id IS NOT NULL))
);

CREATE TABLE dashboard_sessions (
    token_hash   bytea PRIMARY KEY CHECK (length(token_hash) = 32),   -- SHA-256 of the cookie's token
    user_id      bigint NOT NULL REFERENCES dashboard_users (id),
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,                                 -- idle expiry counts from here
    expires_at   timestamptz NOT NULL                                  -- absolute expiry
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);

-- Every alarm raised or changed, whoever changes it, is announced on channel evoucher_alarms
-- (payload: the alarm id) when its transaction commits.
CREATE FUNCTION alarms_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('evoucher_alarms', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER alarms_notify AFTER INSERT OR UPDATE ON alarms
    FOR EACH ROW EXECUTE FUNCTION alarms_notify();

-- Journals are filtered by time.
CREATE INDEX shipments_created ON shipments (created_at);
CREATE INDEX sales_sold_at ON sales (sold_at);
