-- The platform PKI: the CA, every certificate it issued, one-time enrolment codes,
-- revocations and the CRLs published, and the center's own token keys.

CREATE TABLE ca_certificates (
    fingerprint bytea PRIMARY KEY CHECK (length(fingerprint) = 32), -- SHA-256 of der
    der         bytea NOT NULL,
    key_label   text NOT NULL,          -- label of the CA key in the center token
    created_at  timestamptz NOT NULL DEFAULT now(),
    active      boolean NOT NULL DEFAULT true
);
-- One active CA at a time.
CREATE UNIQUE INDEX ca_certificates_one_active ON ca_certificates (active) WHERE active;

CREATE TABLE enrolment_codes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code_hash   bytea NOT NULL UNIQUE CHECK (length(code_hash) = 32), -- SHA-256 of the code
    role        text NOT NULL,
    entity      text NOT NULL CHECK (entity <> ''),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL CHECK (expires_at > created_at),
    used_at     timestamptz,
    certificate_serial text,
    CHECK ((used_at IS NULL) = (certificate_serial IS NULL))
);

CREATE TABLE certificates (
    serial       text PRIMARY KEY,                       -- lower-case hex
    role         text NOT NULL CHECK (role IN ('center-sign', 'center-encrypt', 'center-tls', 'log',
                      'operator-sign', 'operator-encrypt', 'terminal', 'vendor', 'manager', 'auditor')),
    entity       text NOT NULL CHECK (entity <> ''),
    subject      text NOT NULL,
    fingerprint  bytea NOT NULL UNIQUE CHECK (length(fingerprint) = 32),
    der          bytea NOT NULL,
    not_before   timestamptz NOT NULL,
    not_after    timestamptz NOT NULL CHECK (not_after > not_before),
    issued_at    timestamptz NOT NULL,
    enrolment_code_id bigint UNIQUE REFERENCES enrolment_codes (id),
    revoked_at   timestamptz,
    revocation_reason text CHECK (revocation_reason IN ('unspecified', 'keyCompromise', 'affiliationChanged',
                      'superseded', 'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn')),
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
);
CREATE INDEX certificates_role_entity ON certificates (role, entity);
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;

ALTER TABLE enrolment_codes
    ADD CONSTRAINT enrolment_codes_certificate FOREIGN KEY (certificate_serial) REFERENCES certificates (serial)
    DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE crls (
    number      bigint PRIMARY KEY CHECK (number > 0),
    this_update timestamptz NOT NULL,
    next_update timestamptz NOT NULL CHECK (next_update > this_update),
    der         bytea NOT NULL
);

-- Keys the center holds in its token, by label: what they are for and since when.
CREATE TABLE center_keys (
    label      text PRIMARY KEY,
    purpose    text NOT NULL CHECK (purpose IN ('ca', 'center-sign', 'center-encrypt', 'center-tls', 'log', 'kek')),
    algorithm  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
-- One KEK in use at a time; rotation retires the old one.
CREATE UNIQUE INDEX center_keys_one_kek ON center_keys (purpose) WHERE purpose = 'kek' AND retired_at IS NULL;
