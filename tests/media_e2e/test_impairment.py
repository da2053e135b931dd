"""The receive path under a bad network: a seeded in-process UDP relay between baresip and our RTP
socket drops 5 % of baresip's packets and delays each by 0..40 ms (so some overtake others). The
jitter buffer must reorder and absorb the delay and G.711 Appendix I concealment must cover the
losses, so the 440 Hz tone never falls silent; and the call's statistics (RFC 3550 §6.4.1 loss and
interarrival jitter) must report what the relay actually did."""

from __future__ import annotations

import numpy as np
import pytest

from tests.media_e2e import (
    Impairment,
    dominant,
    longest_silence_ms,
    media_rig,
    open_relay_pair,
    silent_windows,
)
from tests.sip_e2e import blocking, run
from tests.sip_peers.fixtures import RegisterPhone
from tests.sip_peers.kamailio import Kamailio

pytestmark = pytest.mark.peers
THEIR_HZ = 440.0
CALL_S = 6.0
MAX_GAP_MS = 60.0


def test_lossy_jittery_path_stays_continuous_and_is_measured(
    kamailio: Kamailio, register_phone: RegisterPhone
) -> None:
    bob = register_phone(kamailio, "bob", tone_hz=THEIR_HZ, answermode="auto")

    async def scenario() -> None:
        async with media_rig(kamailio) as rig:
            ours = await rig.clock.bind(0, "127.0.0.1")
            relay, rtcp_relay, advertised = await open_relay_pair(ours, Impairment(loss=0.05, jitter_s=0.040))
            try:
                call, _ = await rig.call("bob", media=advertised)
                await blocking(bob.phone.wait_event, "CALL_ESTABLISHED", timeout=10)
                await rig.play_for(CALL_S)
                heard = rig.phone.earpiece(CALL_S - 1.0)  # after the jitter buffer has settled
                rms = float(np.sqrt(np.mean(heard.astype(np.float64) ** 2)))
                stats = await rig.hang_up(call)
            finally:
                relay.close()
                rtcp_relay.close()
            assert abs(dominant(heard) - THEIR_HZ) < 15.0
            gap = longest_silence_ms(heard, threshold=0.1 * rms)
            assert gap <= MAX_GAP_MS, f"earpiece silent for {gap:.0f} ms"
            # Concealment covers single losses: without it every lost packet is a silent frame (~12 here).
            silent = int(silent_windows(heard, threshold=0.1 * rms).sum())
            assert silent <= 1, f"{silent} silent frames: losses not concealed"

            sent = relay.forwarded + relay.dropped
            actual = 100.0 * relay.dropped / sent
            print(f"relay: {sent} packets, {relay.dropped} dropped ({actual:.1f} %), "
                  f"{relay.reordered} overtaken; {stats}; longest gap {gap:.0f} ms, {silent} silent frames")
            assert sent > 0.8 * CALL_S * 50 and relay.reordered > 0
            assert 2.0 < actual < 9.0  # the seeded RNG did impair (5 % nominal)
            assert abs(stats.loss_pct - actual) < 1.5, (stats, actual)
            assert 3.0 < stats.jitter_mean_ms < 40.0 and stats.jitter_max_ms > stats.jitter_mean_ms, stats

    run(scenario, timeout=40)
