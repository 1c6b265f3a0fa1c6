-- roomlog_advance_heads (migration 0007) without planning its UPDATE on
-- every call.
--
-- The set-based UPDATE of 0007 joins the unnested arguments with room_heads.
-- PL/pgSQL caches a generic plan for it only if that plan looks no dearer
-- than the custom ones, and a generic plan cannot know how many rooms the
-- arrays hold: it assumes ten, and costs a hash join or ten index probes,
-- against one probe for the usual commit of one or two rooms. So the UPDATE
-- was planned again at every call: with PostgreSQL 15 on the project's
-- machine, 80 µs a call at 1,000 and at 10,000 rooms (forcing the generic
-- plan, a hash join that reads every head, makes it 100 µs; see
-- docs/benchmarks.md).
--
-- A commit of up to 16 rooms now updates each head by its primary key, one
-- statement per room: a plan that is the same for every key, planned once
-- per session, 4 µs a room (24 µs a call for one room). A larger commit (a
-- group commit under load) keeps the single set-based statement: at 20
-- rooms both ways take about the same time, and beyond that one statement
-- wins. The check is unchanged: every head must still be exactly the (seq,
-- hash) the writer built on, or SQLSTATE RLH01 aborts the transaction, with
-- the same message.
CREATE OR REPLACE FUNCTION roomlog_advance_heads(
    p_rooms      text[],
    p_old_seqs   bigint[],
    p_old_hashes bytea[],
    p_seqs       bigint[],
    p_hashes     bytea[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n     bigint := 0;
    total int    := coalesce(cardinality(p_rooms), 0);
BEGIN
    IF total <= 16 THEN
        FOR i IN 1 .. total LOOP
            UPDATE room_heads
            SET seq = p_seqs[i], hash = p_hashes[i], updated_at = now()
            WHERE room = p_rooms[i] AND seq = p_old_seqs[i] AND hash = p_old_hashes[i];
            IF FOUND THEN
                n := n + 1;
            END IF;
        END LOOP;
    ELSE
        UPDATE room_heads h
        SET seq = u.seq, hash = u.hash, updated_at = now()
        FROM unnest(p_rooms, p_old_seqs, p_old_hashes, p_seqs, p_hashes)
            AS u(room, old_seq, old_hash, seq, hash)
        WHERE h.room = u.room AND h.seq = u.old_seq AND h.hash = u.old_hash;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    IF n <> total THEN
        RAISE EXCEPTION 'roomlog: % of % room heads moved since the writer saw them',
            total - n, total
            USING ERRCODE = 'RLH01';
    END IF;
END
$$;
