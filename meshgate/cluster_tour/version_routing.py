"""Version routing on the cluster: user-service v1 and v2 side by side, chosen
by the ``X-API-Version`` header or, without it, by weight (70/30), through
every gateway replica; a version the route does not know is a 400."""

from __future__ import annotations

from meshgate.cluster_tour.context import Tour, TourError, served_by, tally

REQUESTS = 40


async def play(tour: Tour) -> None:
    """Print the distribution per replica and per header; fail on a wrong answer."""
    for gateway in tour.gateways:
        url = f"{gateway}/api/users/1"
        unnamed = [served_by(await tour.http.get(url)) for _ in range(REQUESTS)]
        tour.say(f"  {gateway}  no header      → {tally(unnamed)}")
        for asked, expected in (("v1", "1.0.0"), ("v2", "2.0.0")):
            answers = [
                served_by(await tour.http.get(url, headers={"X-API-Version": asked}))
                for _ in range(5)
            ]
            tour.say(f"  {gateway}  X-API-Version: {asked} → {tally(answers)}")
            if set(answers) != {expected}:
                raise TourError(f"asked for {asked}, got {answers}")
    unknown = await tour.http.get(
        f"{tour.gateways[0]}/api/users/1", headers={"X-API-Version": "v9"}
    )
    tour.say(f"  X-API-Version: v9 → {unknown.status_code} {unknown.json().get('message')}")
    if unknown.status_code != 400:
        raise TourError(f"an unknown version answered {unknown.status_code}, not 400")
