-- The one-round-trip append (eventstore/heads.go). A writer that remembers
-- the heads of the rooms it appends to (from its own earlier commits) sends
-- the whole transaction in one pipeline: lock, advance the heads, insert,
-- commit. It cannot look at the heads in between, so this function checks
-- them inside the transaction, after the room locks are held: each room's
-- head must still be exactly the (seq, hash) the writer built on. If any is
-- not (another process appended, or a commit the writer built on rolled
-- back), it raises SQLSTATE RLH01, the transaction aborts with nothing of it
-- kept, and the writer appends again the two-round-trip way, reading the
-- heads first. The check is what keeps seqs gap-free and the
-- hash chain unbroken whatever the writer remembered; the memory only saves
-- a round trip.
CREATE FUNCTION roomlog_advance_heads(
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
