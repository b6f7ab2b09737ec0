-- API tokens (issue 13): bearer tokens for `/api/v1`, each with a role (viewer,
-- operator, admin) and the connections it may see (a JSON list of names; `["*"]`:
-- every one). Only the token's SHA-256 is kept (a token is 256 random bits, so a
-- fast hash is enough: nothing to brute-force), with its first characters to tell
-- tokens apart in lists. A revoked token stays as the record of who had access.
CREATE TABLE api_tokens (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    connections   JSONB   NOT NULL,
    hash          TEXT    NOT NULL UNIQUE,
    prefix        TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);

-- One live token per name, so `tokens revoke NAME` names one.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
