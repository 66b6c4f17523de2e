-- AI Chatbot: remove its tables (messages first: they reference sessions).
DROP TABLE IF EXISTS chat_messages;
DROP TABLE IF EXISTS chat_sessions;
