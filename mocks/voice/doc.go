// Package voice emulates the Genesys Voice microservices and Orchestration
// Server (ORS) as the WebRTC gateway and the Engagement service (GES) see
// them: a SIP registrar and back-to-back user agent (sipgo, UDP and TCP on
// one port), agent states and virtual queues, ORS callback sessions fed from
// the Redis stream NewCallbackStream, and simulated customers (GVP's role)
// that answer with real G.711 RTP and analyse what they hear.
//
// # Registration
//
// REGISTER sip:<DN>@<tenant SIP domain> with Expires (or ;expires=) and
// refresh; a binding expires on a timer, and the DN goes LoggedOut. Only DNs
// of the tenant model may register (unknown DN or domain: 404). A REGISTER
// without credentials is challenged with 401 carrying both a Digest and a
// Bearer WWW-Authenticate. Accepted credentials:
//
//   - Authorization: Bearer <GAuth access token> (RFC 8898 style, contract
//     9). The token is checked with GAuth GET /auth/v3/userinfo; its tenant
//     must be the DN's tenant and its user the DN's owner (else 403; a token
//     GAuth rejects gets 401 with error="invalid_token"). The WebRTC gateway
//     registers agents this way.
//   - SIP Digest (MD5, stateless HMAC nonces valid 5 min) with the DN's
//     password from the tenant model (demo: dnpass): external phones, sipp.
//     A wrong password gets 403.
//   - Customer numbers (E.164) register with digest user = the number and
//     password "customer", with no DN check; the contact then receives calls
//     and callbacks for that number.
//
// Requests toward a registered endpoint go to the address its REGISTER came
// from (rport style), so a gateway behind TCP needs no listener of its own.
// INVITEs are not challenged: the emulator trusts its loopback peers.
//
// # Routing
//
// An INVITE is routed by its Request-URI user: a DN (registered: bridged;
// known but unregistered: 480), a virtual queue's dial-in number, a
// Click-to-Call-In access number, a simulated customer number, or a
// registered customer number; anything else is 404.
// The B2BUA passes SDP across unchanged, so media flows endpoint to
// endpoint. 180/183, CANCEL, BYE, re-INVITE (hold/resume) and INFO are
// passed across, but for an INFO of application/x-www-form-urlencoded pairs
// (the WebRTC gateway's INFO-MAP), which is merged into the call's user data
// instead, as SIP Server does; headers named X-Genesys-* and User-to-User are
// copied to the next leg, and a caller's X-Genesys-<key> headers (and the
// pairs of X-Genesys-UserData) become the call's user data. Third-party control (HTTP API) sends NOTIFY Event: talk
// (answer, resume) or Event: hold to endpoints that advertise Allow-Events:
// talk/hold in REGISTER or in their 18x/200, like SIP Server's remote answer.
//
// A caller of a dial-in number waits in that virtual queue in early dialog
// (180 Ringing, no music on hold), for at most Config.MaxQueueWait. The
// longest-idle Ready agent with the queue's skill (a skill is named after
// its queue) is offered the call; when it answers the caller gets a 200 OK
// with the agent's SDP. An agent that does not answer within
// AgentAnswerTimeout goes NotReady and the caller keeps the head of the queue.
//
// Agent INVITEs carry the routing context as headers: X-Genesys-CallType
// (inbound|callback), X-Genesys-VirtualQueue, X-Genesys-CallUUID and, for
// callbacks, X-Genesys-CallbackId, X-Genesys-ORSSessionId,
// X-Genesys-Service, X-Genesys-CustomerNumber and X-Genesys-UserData (the
// callback's user data, form-urlencoded as Genesys INFO-MAP attaches it).
//
// # Click-to-Call-In
//
// A call to a call-in group's access number (Tenant.CallInGroups) is
// answered at once by an IVR (GVP's role: 200 OK with SDP, G.711 RTP). It
// plays a short prompt (Config.CallInPromptLength), then listens for RFC 4733
// digits until '#', the 8th digit, or Config.CallInDigitTimeout. Voice then
// asks GES, with an ors_client token, POST
// /engagement/internal/v1/call-in/match {"accessNumber", "accessCode", "ani"}
// (accessCode empty when the group has no access code: the caller's number
// identifies the request). GES answers 200 with the request, which it marks
// MATCHED (a request matches once), or 404. On a match the caller waits in
// the group's virtual queue (the group's own, else the one GES names),
// hearing the prompt on a loop, and is routed exactly as an inbound queue
// call; the agent's INVITE carries X-Genesys-CallType inbound,
// X-Genesys-CallInRequestId, X-Genesys-CallInGroup, X-Genesys-CustomerNumber,
// X-Genesys-Service (the request's callbackServiceId) and X-Genesys-UserData
// (the request's user data). The agent's answer reaches the caller by
// re-INVITE. Without a match the IVR prompts once more; a second miss plays
// a 480 Hz tone for CallInPromptLength and hangs up (BYE). The call record
// (kind "callin") keeps what the IVR heard as customer_analysis.
//
// # Agents
//
// LoggedOut (not registered) -> NotReady on REGISTER; Ready/NotReady on the
// agent's request (PUT /voice/v1/agents/me/state); Busy while reserved or on
// a call; AfterCallWork for Config.WrapUpTime after a queue or callback call,
// then Ready. A direct call to or from a DN makes it Busy and then restores
// its earlier state (Ready through AfterCallWork).
//
// # ORS callback sessions
//
// An entry has one field, callback, a JSON object: {action: "start", id,
// ccid, service, virtualQueue, phoneNumber, desiredTime, maxDialAttempts,
// priority, retryDelaySec, userData} (the last three left out when 0 or
// empty) or {action: "cancel", id, ccid}. A handled entry is XACKed and
// XDELed.
//
// The consumer reads NewCallbackStream in group "ors" (XREADGROUP BLOCK, so
// an idle stream costs one command per ReadBlock). A start entry stays
// pending until its session ends and is then XACKed: on start the consumer
// first re-reads its own pending entries (a restart resumes them), claims
// the pending entries of consumers whose lease lapsed, and renews its own
// lease (one SET of <stream>:ors-consumer:<name> every ClaimMinIdle/3) so no
// other process steals its running sessions; a consumer silent for
// ClaimMinIdle is taken over with XCLAIM.
// A start for a callback already running or finished here is a no-op; one
// GES already completed answers 409 to the first report and is not re-run.
// So does one GES has PROCESSING (its call was up on a consumer that died,
// and GES completes it as AGENT_CONNECTED): the customer is not called twice.
//
// A session is customer-first: QUEUED (position, EWT; reported again every
// PositionReportInterval, 5 s, while its place in the queue changes) -> an agent is
// reserved (ROUTING) -> the customer is dialled -> the agent's DN is called
// with the customer's SDP -> the agent answers (PROCESSING) -> either side
// hangs up -> COMPLETED AGENT_CONNECTED. A busy, failing or unanswered
// customer releases the agent (Ready), waits QUEUED (EWT = the delay) and is
// retried after retryDelaySec up to maxDialAttempts, then COMPLETED
// FAIL_CALL_TO_CUSTOMER. An agent that
// does not answer goes NotReady; the callback returns to the head of the
// queue with the customer kept on the line (not re-dialled); a customer who
// hangs up meanwhile ends it as COMPLETED FAIL_AGENT_CONNECT. A cancel entry
// stops a session in QUEUED or ROUTING (legs are cancelled or released) and
// is ignored once PROCESSING; a cancelled session sends no further report.
// Every state change is POSTed at once to GES
// /engagement/internal/v1/callbacks/{id}/state with an ors_client token
// (client_credentials, cached); 409 or 404 ends the session.
//
// A registered customer number is called over SIP with an offer from a
// parking media endpoint playing a prompt (GVP); once the agent answers, the
// customer is re-INVITEd with the agent's SDP.
//
// # Simulated customers
//
// In-process RTP endpoints (PCMU preferred, PCMA accepted, telephone-event
// 101), reachable from callbacks and by INVITE:
//
//	+12025550100  answers at once, plays 440 Hz
//	+12025550101  answers, plays a speech-like prompt
//	+12025550102  busy (486)
//	+12025550103  rings, 480 after Config.NoAnswerTimeout
//	+12025550104  answers after Config.SlowAnswerDelay (3 s), plays 440 Hz
//	+12025550105  answers, sends RFC 4733 DTMF 1234#, then 440 Hz
//	+12025550106  answers, hangs up after Config.HangupAfter (5 s)
//	+12025550107  fails with 503
//
// What each one hears (level, dominant frequency, DTMF digits, whether audio
// arrived, packets and loss) is attached to its call record as
// customer_analysis in GET /voice/v1/calls and /voice/v1/calls/{id}.
package voice
