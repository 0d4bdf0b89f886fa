//! The endpoints a workload mixes, and `--endpoints` (`v1:0.3,v2get:0.5,v2post:0.2`).

/// One way the SDKs and integrations ask for variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v1/vardata?user_id=…&device_id=…&context=…` (the REST API, curl, servers).
    V1,
    /// `GET /sdk/v2/vardata?v=0` with the user as URL-safe base64 in `X-Amp-Exp-User`
    /// (the JS, Node, Android and Go SDKs).
    V2Get,
    /// `POST /sdk/v2/vardata?v=0` with the user as the JSON body (the Python and JVM SDKs).
    V2Post,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [Endpoint::V1, Endpoint::V2Get, Endpoint::V2Post];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::V1 => "v1",
            Endpoint::V2Get => "v2get",
            Endpoint::V2Post => "v2post",
        }
    }
}

/// Endpoint weights, normalized to shares summing to 1, in [`Endpoint::ALL`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointMix([f64; 3]);

impl Default for EndpointMix {
    /// The brief's mix: browser and mobile SDKs (GET) dominate, servers split.
    fn default() -> EndpointMix {
        EndpointMix([0.3, 0.5, 0.2])
    }
}

impl EndpointMix {
    /// All requests on one endpoint.
    pub fn only(endpoint: Endpoint) -> EndpointMix {
        EndpointMix(Endpoint::ALL.map(|e| if e == endpoint { 1.0 } else { 0.0 }))
    }

    /// Parses `name:weight,…`: each name once, weights finite and non-negative, not all 0.
    pub fn parse(text: &str) -> Result<EndpointMix, String> {
        let mut weights = [None::<f64>; 3];
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, weight) = item
                .split_once(':')
                .ok_or_else(|| format!("{item:?} is not name:weight"))?;
            let i = Endpoint::ALL
                .iter()
                .position(|e| e.name() == name.trim())
                .ok_or_else(|| format!("unknown endpoint {name:?} (known: v1, v2get, v2post)"))?;
            let weight: f64 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| format!("weight {weight:?} of {name} is not a number ≥ 0"))?;
            if weights[i].replace(weight).is_some() {
                return Err(format!("{name} is given twice"));
            }
        }
        let weights = weights.map(|w| w.unwrap_or(0.0));
        let sum: f64 = weights.iter().sum();
        if sum <= 0.0 {
            return Err("no endpoint has a weight above 0".into());
        }
        Ok(EndpointMix(weights.map(|w| w / sum)))
    }

    /// The share of requests on `endpoint`.
    pub fn share(&self, endpoint: Endpoint) -> f64 {
        self.0[endpoint as usize]
    }

    /// An endpoint other than `/v1/vardata` with a share above 0.
    pub fn non_v1(&self) -> Option<Endpoint> {
        Endpoint::ALL
            .into_iter()
            .find(|&e| e != Endpoint::V1 && self.share(e) > 0.0)
    }

    /// The endpoint a uniform draw `u` in [0, 1) picks.
    pub fn pick(&self, u: f64) -> Endpoint {
        let mut acc = 0.0;
        for e in Endpoint::ALL {
            acc += self.share(e);
            if u < acc && self.share(e) > 0.0 {
                return e;
            }
        }
        // Rounding left `u` past the last sum: the last endpoint with a share.
        Endpoint::ALL
            .into_iter()
            .rev()
            .find(|&e| self.share(e) > 0.0)
            .unwrap_or(Endpoint::V1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let mix = EndpointMix::parse("v1:1, v2post:3").unwrap();
        assert_eq!(mix.share(Endpoint::V1), 0.25);
        assert_eq!(mix.share(Endpoint::V2Get), 0.0);
        assert_eq!(mix.share(Endpoint::V2Post), 0.75);
        assert_eq!(mix.non_v1(), Some(Endpoint::V2Post));
        assert_eq!(EndpointMix::only(Endpoint::V1).non_v1(), None);
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        for bad in [
            "",
            "v1",
            "v1:x",
            "v1:-1",
            "v1:inf",
            "v1:1,v1:2",
            "v9:1",
            "v1:0",
        ] {
            assert!(EndpointMix::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pick_never_lands_on_a_zero_share() {
        let mix = EndpointMix::parse("v1:1,v2get:0,v2post:1").unwrap();
        assert_eq!(mix.pick(0.0), Endpoint::V1);
        assert_eq!(mix.pick(0.5), Endpoint::V2Post);
        assert_eq!(mix.pick(0.999_999_999), Endpoint::V2Post);
        assert_eq!(mix.pick(1.0), Endpoint::V2Post);
    }
}
