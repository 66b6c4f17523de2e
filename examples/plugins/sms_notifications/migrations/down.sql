-- SMS Notifications: remove the message log.
DROP TABLE IF EXISTS sms_messages;
