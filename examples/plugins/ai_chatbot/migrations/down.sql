-- AI Chatbot: remove its tables (ratings and messages first: they reference sessions).
DROP TABLE IF EXISTS chat_ratings;
DROP TABLE IF EXISTS chat_messages;
DROP TABLE IF EXISTS chat_sessions;
