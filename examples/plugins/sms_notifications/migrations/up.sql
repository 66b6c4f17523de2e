-- SMS Notifications 1.0.0: every message sent (or refused by the gateway).
-- Portable SQL; plugdock transpiles it for SQLite, PostgreSQL and MariaDB.
-- status is 'sent' or 'failed'; gateway_status is the gateway's HTTP status (NULL: unreachable).

CREATE TABLE sms_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient VARCHAR(32) NOT NULL,
    sender VARCHAR(11) NOT NULL,
    body VARCHAR(640) NOT NULL,
    status VARCHAR(10) NOT NULL,
    gateway_status INTEGER NULL,
    gateway_id VARCHAR(100) NULL,
    error VARCHAR(300) NULL,
    sent_by VARCHAR(64) NOT NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX ix_sms_messages_created_at ON sms_messages (created_at);
