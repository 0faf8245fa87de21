-- Money: a double-entry ledger in minor units with an ISO 4217 currency, the retailers' money
-- terms (prepaid or credit, pay on shipment or on sale), commissions, the platform's margins,
-- the price terms fixed on each shipment, and signed statements.
--
-- Sign convention (credit-positive): an entry's amount is what the platform comes to owe the
-- account's party (positive) or what the party comes to owe the platform (negative). A retailer's
-- balance is its prepaid funds (positive) or its debt (negative); an operator's is what the
-- platform owes it; platform:margin is what the platform earned; platform:bank and platform:cash
-- are negative by the money the platform holds. The entries of a ledger transaction sum to zero
-- per currency, and an account's balance is the sum of its entries: both are held here.

CREATE TABLE retailer_terms (
    retailer_id  text PRIMARY KEY REFERENCES retailers (id),
    currency     char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    mode         text NOT NULL CHECK (mode IN ('prepaid', 'credit')),
    credit_limit bigint NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),  -- minor units
    settlement   text NOT NULL CHECK (settlement IN ('on_shipment', 'on_sale')),
    updated_at   timestamptz NOT NULL,
    CHECK (mode = 'credit' OR credit_limit = 0)
);

-- Commission a retailer earns, in basis points of the face value; '' = every operator / product.
CREATE TABLE retailer_commissions (
    retailer_id text NOT NULL REFERENCES retailers (id),
    operator_id text NOT NULL,
    product     text NOT NULL,
    bps         integer NOT NULL CHECK (bps BETWEEN 0 AND 10000),
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (retailer_id, operator_id, product),
    CHECK (operator_id <> '' OR product = '')
);

-- The platform's margin on an operator's codes, in basis points of the face value: the operator
-- is owed the face value less the margin. '' = every product of the operator.
CREATE TABLE operator_margins (
    operator_id text NOT NULL REFERENCES operators (id),
    product     text NOT NULL,
    bps         integer NOT NULL CHECK (bps BETWEEN 0 AND 10000),
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (operator_id, product)
);

CREATE TABLE ledger_accounts (
    account    text NOT NULL CHECK (account ~ '^(retailer|operator):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
                   OR account IN ('platform:margin', 'platform:bank', 'platform:cash')),
    currency   char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance    bigint NOT NULL DEFAULT 0,   -- the sum of the account's entries, kept by trigger
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, currency)
);

-- One business event: stock charged at shipment, sales charged, unsold stock returned, a top-up.
-- Stock rows carry what statements add up (signed: a return is negative).
CREATE TABLE ledger_transactions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('shipment', 'sale', 'return', 'topup')),
    ref         text NOT NULL,        -- shipment id, or the top-up's bank or receipt reference
    retailer_id text NOT NULL REFERENCES retailers (id),
    operator_id text,
    product     text,
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    codes       integer NOT NULL DEFAULT 0,
    face_value  bigint NOT NULL DEFAULT 0,
    commission  bigint NOT NULL DEFAULT 0,   -- the retailer's: it pays face_value - commission
    margin      bigint NOT NULL DEFAULT 0,   -- the platform's: the operator is owed face_value - margin
    amount      bigint NOT NULL DEFAULT 0,   -- a top-up's amount
    method      text CHECK (method IN ('bank', 'cash')),
    created_by  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    CHECK ((kind = 'topup') = (method IS NOT NULL)),
    CHECK (kind = 'topup' OR (operator_id IS NOT NULL AND product IS NOT NULL)),
    CHECK (kind <> 'topup' OR amount > 0)
);
-- A top-up's reference is unique: the same bank transfer entered twice is refused.
CREATE UNIQUE INDEX ledger_topup_reference ON ledger_transactions (ref) WHERE kind = 'topup';
-- A shipment is charged once.
CREATE UNIQUE INDEX ledger_shipment_charge ON ledger_transactions (ref) WHERE kind = 'shipment';
CREATE INDEX ledger_transactions_time ON ledger_transactions (created_at);
CREATE INDEX ledger_transactions_retailer ON ledger_transactions (retailer_id, created_at);
CREATE INDEX ledger_transactions_operator ON ledger_transactions (operator_id, created_at) WHERE operator_id IS NOT NULL;

CREATE TABLE ledger_entries (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id    bigint NOT NULL REFERENCES ledger_transactions (id),
    account  text NOT NULL,
    currency char(3) NOT NULL,
    amount   bigint NOT NULL CHECK (amount <> 0),
    FOREIGN KEY (account, currency) REFERENCES ledger_accounts (account, currency)
);
CREATE INDEX ledger_entries_tx ON ledger_entries (tx_id);
CREATE INDEX ledger_entries_account ON ledger_entries (account, currency, id);

-- The price terms of a shipment to a retailer with money terms, fixed when it is sent, per code:
-- a pay-on-sale shipment's codes are charged on these terms when sold, a pay-on-shipment's
-- returned codes credited back on them.
CREATE TABLE shipment_terms (
    shipment_id text PRIMARY KEY REFERENCES shipments (id),
    retailer_id text NOT NULL REFERENCES retailers (id),
    settlement  text NOT NULL CHECK (settlement IN ('on_shipment', 'on_sale')),
    currency    char(3) NOT NULL,
    face_value  bigint NOT NULL CHECK (face_value > 0),
    commission  bigint NOT NULL CHECK (commission >= 0),
    margin      bigint NOT NULL CHECK (margin >= 0),
    CHECK (commission <= face_value AND margin <= face_value)
);
CREATE INDEX shipment_terms_consignment ON shipment_terms (retailer_id) WHERE settlement = 'on_sale';

-- Signed statements, byte-exact as sent.
CREATE TABLE statements (
    id          text PRIMARY KEY,
    party_kind  text NOT NULL CHECK (party_kind IN ('retailer', 'operator')),
    party       text NOT NULL,
    period_from timestamptz NOT NULL,
    period_to   timestamptz NOT NULL,
    message_id  uuid NOT NULL UNIQUE,
    document    bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    CHECK (period_to > period_from)
);
CREATE INDEX statements_party ON statements (party_kind, party, period_from);

-- Balances follow entries, in the entry's transaction: the account row is locked as it is
-- updated, so writers of one account serialise on it.
CREATE FUNCTION ledger_entry_post() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ledger_accounts SET balance = balance + NEW.amount WHERE account = NEW.account AND currency = NEW.currency;
    RETURN NULL;
END
$$;
CREATE TRIGGER ledger_entries_post AFTER INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION ledger_entry_post();

-- A transaction's entries sum to zero per currency, checked at commit (entries go in one by one):
-- once for every transaction (which must have entries) and for every entry (an entry added
-- later to an old transaction is checked too).
CREATE FUNCTION ledger_check_balanced(tx bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    cur char(3);
    total numeric;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_entries WHERE tx_id = tx) THEN
        RAISE EXCEPTION 'ledger transaction % has no entries', tx USING ERRCODE = 'check_violation';
    END IF;
    SELECT currency, sum(amount) INTO cur, total FROM ledger_entries WHERE tx_id = tx
        GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced: its % entries sum to %', tx, cur, total
            USING ERRCODE = 'check_violation';
    END IF;
END
$$;
CREATE FUNCTION ledger_tx_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_balanced(NEW.id);
    RETURN NULL;
END
$$;
CREATE FUNCTION ledger_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_balanced(NEW.tx_id);
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_tx_balanced();
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced();

-- The books are append-only.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: post a correcting transaction instead', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- A balance moves only through an entry (the posting trigger runs one level down).
CREATE FUNCTION ledger_account_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.balance <> 0 THEN
            RAISE EXCEPTION 'account % opens with balance 0: post entries', NEW.account USING ERRCODE = 'check_violation';
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'ledger accounts are never deleted' USING ERRCODE = 'insufficient_privilege';
    ELSIF (NEW.balance IS DISTINCT FROM OLD.balance AND pg_trigger_depth() < 2)
        OR NEW.account <> OLD.account OR NEW.currency <> OLD.currency THEN
        RAISE EXCEPTION 'the balance of % moves only by ledger entries', OLD.account USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ledger_accounts_guard BEFORE INSERT OR UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_account_guard();
