-- Operators, their products, the code vault (batches, parts, codes under per-part DEKs wrapped
-- by the HSM KEK), the exchange's replay register and refusal journal, purchase orders and
-- alarms.

CREATE TABLE operators (
    id         text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    operator_id      text NOT NULL REFERENCES operators (id),
    code             text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name             text NOT NULL,
    face_value       bigint NOT NULL CHECK (face_value > 0),  -- minor units
    currency         char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    refill_template  text NOT NULL CHECK (position('{PIN}' in refill_template) > 0),
    serial_pattern   text NOT NULL,   -- regular expression a serial must match in full
    pin_pattern      text NOT NULL,   -- regular expression a PIN must match in full
    reorder_level    integer NOT NULL DEFAULT 0 CHECK (reorder_level >= 0),
    reorder_quantity integer NOT NULL DEFAULT 0 CHECK (reorder_quantity >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator_id, code)
);

CREATE TABLE purchase_orders (
    id           text PRIMARY KEY,
    operator_id  text NOT NULL,
    product      text NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    state        text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'fulfilled', 'cancelled')),
    created_at   timestamptz NOT NULL,
    fulfilled_at timestamptz,
    document     bytea NOT NULL,            -- the signed PurchaseOrder, byte-exact
    FOREIGN KEY (operator_id, product) REFERENCES products (operator_id, code),
    CHECK ((state = 'fulfilled') = (fulfilled_at IS NOT NULL))
);
-- At most one open order per product: low stock must not raise a new order on every batch.
CREATE UNIQUE INDEX purchase_orders_one_open ON purchase_orders (operator_id, product) WHERE state = 'open';

-- Every accepted message, for replay refusal and idempotent retries.
CREATE TABLE messages (
    message_id  uuid PRIMARY KEY,
    type        text NOT NULL,
    sender      text NOT NULL,
    digest      bytea NOT NULL UNIQUE CHECK (length(digest) = 32),   -- SHA-256 of the bytes received
    received_at timestamptz NOT NULL,
    response    bytea                                                -- the signed answer, if any
);

-- Refused messages: what was refused, why, from whom it claimed to be. Never the document.
CREATE TABLE refused_messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL,
    peer        text NOT NULL,          -- the mTLS identity that sent it
    type        text NOT NULL,          -- root element, or '' when unreadable
    message_id  text NOT NULL,
    sender      text NOT NULL,          -- as claimed in the document
    reason      text NOT NULL,
    detail      text NOT NULL,
    size        integer NOT NULL,
    digest      bytea NOT NULL
);
CREATE INDEX refused_messages_received ON refused_messages (received_at);

CREATE TABLE alarms (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('security', 'vault_low_stock', 'terminal_low_stock', 'expiring_stock',
                      'silent_terminal', 'report_gap', 'credit_limit')),
    subject      text NOT NULL,         -- what it is about: a party, a product, a terminal
    message      text NOT NULL,
    state        text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    occurrences  integer NOT NULL DEFAULT 1 CHECK (occurrences > 0),
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    resolved_at  timestamptz
);
-- One unresolved alarm per kind and subject; repeats count occurrences.
CREATE UNIQUE INDEX alarms_one_unresolved ON alarms (kind, subject) WHERE state <> 'resolved';

CREATE TABLE batches (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator_id     text NOT NULL,
    ref             text NOT NULL,           -- the operator's BatchId
    product         text NOT NULL,
    parts           integer NOT NULL CHECK (parts > 0),
    lot_count       bigint NOT NULL CHECK (lot_count > 0),
    lot_face_value  bigint NOT NULL CHECK (lot_face_value > 0),
    purchase_order  text REFERENCES purchase_orders (id),
    created_at      timestamptz NOT NULL,
    UNIQUE (operator_id, ref),
    FOREIGN KEY (operator_id, product) REFERENCES products (operator_id, code)
);

CREATE TABLE batch_parts (
    batch_id     bigint NOT NULL REFERENCES batches (id),
    part         integer NOT NULL CHECK (part > 0),
    message_id   uuid NOT NULL UNIQUE REFERENCES messages (message_id),
    count        integer NOT NULL CHECK (count > 0),
    face_value   bigint NOT NULL CHECK (face_value > 0),
    codes_digest bytea NOT NULL CHECK (length(codes_digest) = 32),
    kek_label    text NOT NULL REFERENCES center_keys (label),
    dek_wrapped  bytea NOT NULL CHECK (length(dek_wrapped) = 12 + 32 + 16),  -- nonce ‖ wrapped DEK ‖ tag
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (batch_id, part)
);

CREATE TABLE codes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator_id text NOT NULL,
    serial      text NOT NULL,
    product     text NOT NULL,
    batch_id    bigint NOT NULL,
    part        integer NOT NULL,
    pin_ct      bytea NOT NULL CHECK (length(pin_ct) > 28),   -- nonce ‖ AES-256-GCM(PIN) ‖ tag, AAD = serial ‖ batch ‖ part
    expires_on  date NOT NULL,
    state       text NOT NULL DEFAULT 'in_vault' CHECK (state IN ('in_vault', 'allocated', 'shipped', 'delivered', 'sold',
                     'returned', 'quarantined', 'expired', 'void')),
    UNIQUE (operator_id, serial),
    FOREIGN KEY (batch_id, part) REFERENCES batch_parts (batch_id, part),
    FOREIGN KEY (operator_id, product) REFERENCES products (operator_id, code)
);
CREATE INDEX codes_stock ON codes (operator_id, product, expires_on) WHERE state = 'in_vault';
