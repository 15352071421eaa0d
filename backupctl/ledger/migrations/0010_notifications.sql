-- Notifications (Apprise): what was told about each night, so that one message per
-- night, event and notify URL goes out across reruns, concurrent run-nightly
-- processes, workers and a check that fires every few minutes.
--
-- url_hash: a hash of the notify URL (the URL itself is a secret and never stored).
-- A sender claims a row (status 'sending') before it sends and marks it 'sent' or
-- 'failed' after; a 'failed' row is taken by the next sender, and a 'sending' row
-- whose sender died is taken over after a few minutes. attempts counts the claims.
-- error: why the latest send failed (redacted, no URL).

CREATE TABLE notifications (
    run_date    date NOT NULL,
    event       text NOT NULL CHECK (event IN ('failure', 'missed', 'warning', 'recovered')),
    url_hash    text NOT NULL,
    status      text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    claimed_by  text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    attempts    integer NOT NULL DEFAULT 1,
    error       text,
    PRIMARY KEY (run_date, event, url_hash),
    CHECK (status <> 'sent' OR sent_at IS NOT NULL)
);
