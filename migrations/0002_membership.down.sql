DROP TABLE IF EXISTS room_members;
