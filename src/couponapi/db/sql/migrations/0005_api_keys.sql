-- API keys for servers and admins (docs/identity.md). Only the SHA-256 of a key is stored,
-- under a lookup id that names the row; a revoked key keeps its row (who had which key,
-- when), and its name may be given to a new key.
CREATE TABLE api_key
(
    id         bigint      GENERATED ALWAYS AS IDENTITY
        CONSTRAINT api_key_pk PRIMARY KEY,
    name       text        NOT NULL
        CONSTRAINT api_key_name_valid CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    lookup     text        NOT NULL
        CONSTRAINT api_key_lookup_unique UNIQUE,
    digest     bytea       NOT NULL
        CONSTRAINT api_key_digest_sha256 CHECK (length(digest) = 32),
    scope      text        NOT NULL
        CONSTRAINT api_key_scope_known CHECK (scope IN ('server', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- One live key per name: `keys revoke NAME` names exactly one.
CREATE UNIQUE INDEX api_key_live_name_idx ON api_key (name) WHERE revoked_at IS NULL;
