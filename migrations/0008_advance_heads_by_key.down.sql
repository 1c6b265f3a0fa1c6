-- Restores migration 0007's roomlog_advance_heads: one set-based UPDATE for
-- any number of rooms. Same arguments, same check, same error.
CREATE OR REPLACE FUNCTION roomlog_advance_heads(
    p_rooms      text[],
    p_old_seqs   bigint[],
    p_old_hashes bytea[],
    p_seqs       bigint[],
    p_hashes     bytea[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    UPDATE room_heads h
    SET seq = u.seq, hash = u.hash, updated_at = now()
    FROM unnest(p_rooms, p_old_seqs, p_old_hashes, p_seqs, p_hashes)
        AS u(room, old_seq, old_hash, seq, hash)
    WHERE h.room = u.room AND h.seq = u.old_seq AND h.hash = u.old_hash;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> cardinality(p_rooms) THEN
        RAISE EXCEPTION 'roomlog: % of % room heads moved since the writer saw them',
            cardinality(p_rooms) - n, cardinality(p_rooms)
            USING ERRCODE = 'RLH01';
    END IF;
END
$$;
