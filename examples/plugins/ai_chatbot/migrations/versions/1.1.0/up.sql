-- AI Chatbot 1.0.0 → 1.1.0: visitors rate a conversation; sessions count their messages.
-- Schema changes first, the back-fill last: on MariaDB each schema change commits on its
-- own, so a failing back-fill is still rolled back there.

ALTER TABLE chat_sessions ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_sessions ADD COLUMN rating INTEGER NULL;

CREATE TABLE chat_ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL UNIQUE,
    stars INTEGER NOT NULL,
    comment VARCHAR(500) NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (session_id) REFERENCES chat_sessions(id) ON DELETE CASCADE
);

CREATE INDEX ix_chat_sessions_rating ON chat_sessions (rating);

-- Existing sessions: count the messages they already have.
UPDATE chat_sessions
SET message_count = (
    SELECT COUNT(*) FROM chat_messages WHERE chat_messages.session_id = chat_sessions.id
);
