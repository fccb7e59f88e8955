// CX Lab agent softphone. Speaks the gateway's Grtc-style HTTP long-poll
// protocol: POST sign_in (Bearer token), GET wait?id= (Pragma = peer),
// POST message?from=&to= with "RSMP {json}" OFFER/ANSWER/OK (candidates in
// bulk, after ICE gathering), BYE, INFO-MAP, GET-STATS; GET sign_out?id=.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const cfg = {
    clientId: body.dataset.clientId || 'cxlab-console',
    gw: body.dataset.gateway || '/webrtc',
    voice: body.dataset.voice || '/voice/v1',
    pollMs: 30000,     // polling_timeout
    iceMs: 3000,       // upper bound on ICE gathering before sending anyway
    retryMs: 3000,
    noAnswerMs: 65000, // an outgoing call rings at most the gateway's noanswer_timeout (60 s)
  };
  const S = {
    token: null, user: null, ssid: null, gen: 0, iceServers: [],
    sessionCounter: 101, call: null, audioCtx: null, meters: {}, timer: null,
  };

  // ---- messages -----------------------------------------------------------
  function showError(msg) { const e = $('error'); e.textContent = msg || ''; e.hidden = !msg; }
  function notice(msg) { $('notice').textContent = msg || ''; }
  function setText(id, text, state) {
    const el = $(id); el.textContent = text;
    if (state !== undefined) el.dataset.state = state;
  }

  // ---- OAuth: authorization code + PKCE -----------------------------------
  function b64url(bytes) {
    let s = '';
    bytes.forEach((b) => { s += String.fromCharCode(b); });
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function randomString(n) { const b = new Uint8Array(n); crypto.getRandomValues(b); return b64url(b); }
  async function challengeOf(verifier) {
    if (window.crypto && crypto.subtle) {
      const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
      return ['S256', b64url(new Uint8Array(d))];
    }
    return ['plain', verifier]; // insecure contexts have no WebCrypto
  }
  function redirectURI() { return location.origin + location.pathname; }

  async function startAuthorize() {
    const verifier = randomString(48);
    const state = randomString(18);
    const [method, challenge] = await challengeOf(verifier);
    sessionStorage.setItem('sp.pkce', JSON.stringify({ verifier, state }));
    const q = new URLSearchParams({
      response_type: 'code', client_id: cfg.clientId, redirect_uri: redirectURI(), scope: '*',
      state, code_challenge: challenge, code_challenge_method: method,
    });
    location.assign('/auth/v3/oauth/authorize?' + q.toString());
  }

  // The form signs in at GAuth (which sets its login-session cookie), then the
  // authorization request completes without showing GAuth's own page.
  async function login(ev) {
    ev.preventDefault();
    showError('');
    const form = new URLSearchParams({ username: $('login-user').value.trim(), password: $('login-pass').value });
    let r;
    try {
      r = await fetch('/auth/v3/sign-in', { method: 'POST', body: form, credentials: 'same-origin' });
    } catch (e) {
      showError('GAuth is unreachable: ' + e.message);
      return;
    }
    if (r.status === 401) { showError('Wrong username or password.'); return; }
    if (!r.ok) { showError('GAuth sign-in failed (HTTP ' + r.status + ').'); return; }
    await startAuthorize();
  }

  async function completeAuthorize(params) {
    const saved = JSON.parse(sessionStorage.getItem('sp.pkce') || 'null');
    sessionStorage.removeItem('sp.pkce');
    history.replaceState(null, '', location.pathname);
    if (params.get('error')) {
      showError('Sign-in refused: ' + (params.get('error_description') || params.get('error')));
      return false;
    }
    if (!saved || saved.state !== params.get('state')) {
      showError('This sign-in answer does not belong to this tab; please sign in again.');
      return false;
    }
    let r;
    try {
      r = await fetch('/softphone/token', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ code: params.get('code'), code_verifier: saved.verifier, redirect_uri: redirectURI() }),
      });
    } catch (e) {
      showError('Sign-in failed: ' + e.message);
      return false;
    }
    const j = await r.json().catch(() => ({}));
    if (!r.ok || !j.access_token) { showError('Sign-in failed: ' + (j.error || ('HTTP ' + r.status))); return false; }
    sessionStorage.setItem('sp.token', j.access_token);
    return true;
  }

  function authHeaders(extra) { return Object.assign({ Authorization: 'Bearer ' + S.token }, extra || {}); }

  async function loadUser() {
    let r;
    try {
      r = await fetch('/auth/v3/userinfo', { headers: authHeaders() });
    } catch (e) {
      showError('GAuth is unreachable: ' + e.message);
      return false;
    }
    if (r.status === 401) { return false; }
    if (!r.ok) { showError('Could not read your profile (HTTP ' + r.status + ').'); return false; }
    const j = await r.json();
    S.user = j.cmeUserName || j.loginName || j.username || '?';
    $('user-name').textContent = S.user;
    return true;
  }

  // ---- agent state (Voice) ------------------------------------------------
  function showAgentState(data) {
    const agents = (data && data.agents) || [];
    const st = agents.length ? agents[0].state : '';
    setText('agent-state', st || 'unknown', st || '');
    // Wrap-up ends by itself in a few seconds: follow it closely, so that
    // Ready shows when it comes rather than up to 5 s later.
    clearTimeout(S.acwTimer);
    if (st === 'AfterCallWork') S.acwTimer = setTimeout(readAgentState, 1000);
  }
  async function readAgentState() {
    if (!S.token) return; // signed out: nothing to follow
    try {
      const r = await fetch(cfg.voice + '/agents/me', { headers: authHeaders() });
      if (r.ok) showAgentState((await r.json()).data);
      else if (r.status === 401 && S.token) signedOutByServer('Your sign-in is no longer valid (it expired, or CX Lab restarted). Sign in again.');
    } catch (e) { /* shown by the state call when the user acts */ }
  }

  // signedOutByServer returns to the sign-in form when the session cannot go
  // on (the gateway ended it, or the token is refused), saying why.
  function signedOutByServer(why) {
    const ssid = S.ssid;
    S.gen++;
    if (S.pollAbort) S.pollAbort.abort();
    S.ssid = null;
    // Out of the gateway too (when it still knows the session): the agent
    // stayed signed in, and Ready, for a minute after the page gave up.
    if (ssid) fetch(cfg.gw + '/sign_out?id=' + encodeURIComponent(ssid), { credentials: 'same-origin' }).catch(() => {});
    if (S.call && S.call.state !== 'ended') endCall('gateway');
    setGw('signed-out');
    sessionStorage.removeItem('sp.token');
    S.token = null;
    showPhone(false);
    showError(why);
  }
  async function setAgentState(state) {
    showError('');
    let r;
    try {
      r = await fetch(cfg.voice + '/agents/me/state', {
        method: 'PUT', headers: authHeaders({ 'Content-Type': 'application/json' }), body: JSON.stringify({ state }),
      });
    } catch (e) {
      showError('The Voice service is unreachable: ' + e.message);
      return;
    }
    const j = await r.json().catch(() => ({}));
    if (!r.ok) {
      showError('Could not set ' + state + ': ' + ((j.status && j.status.message) || ('HTTP ' + r.status)));
      return;
    }
    showAgentState(j.data);
  }

  // ---- gateway session ----------------------------------------------------
  function setGw(state) { setText('gw-state', state, state); }
  const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

  async function gwSignIn() {
    const gen = ++S.gen;
    setGw('connecting');
    for (;;) {
      if (gen !== S.gen) return;
      let r;
      try {
        r = await fetch(cfg.gw + '/sign_in', { method: 'POST', headers: authHeaders(), credentials: 'same-origin' });
      } catch (e) {
        setGw('unreachable');
        showError('The WebRTC gateway is unreachable (' + cfg.gw + '); retrying…');
        await sleep(cfg.retryMs);
        continue;
      }
      if (r.status === 401 || r.status === 403) {
        setGw('refused');
        const body = await r.text();
        showError(/"NO_DN"/.test(body)
          ? 'This user has no DN (phone line), so it cannot use the softphone: sign in as an agent (agent1 to agent4).'
          : 'The gateway refused the sign-in (HTTP ' + r.status + ')' + (grtcReason(body) || ': ' + body.slice(0, 200)));
        return;
      }
      if (!r.ok) {
        setGw('unreachable');
        showError('The WebRTC gateway answered HTTP ' + r.status + ' to sign_in' + grtcReason(await r.text()) + '; retrying…');
        await sleep(cfg.retryMs);
        continue;
      }
      const first = (await r.text()).trim().split(/\r?\n/)[0];
      const i = first.indexOf('=');
      S.ssid = (i >= 0 ? first.slice(i + 1) : first).trim();
      break;
    }
    showError('');
    setGw('signed-in');
    readAgentState(); // the sign-in registered the DN: LoggedOut became NotReady
    await loadIceServers();
    pollLoop(gen);
  }

  // grtcReason is the message of a Grtc ERROR body (ERROR {"errorType","message"}), as ": message".
  function grtcReason(body) {
    const m = /^ERROR\s+(\{.*\})/s.exec(body || '');
    if (!m) return '';
    try {
      const j = JSON.parse(m[1]);
      return j.message ? ': ' + String(j.message).slice(0, 200) : '';
    } catch (e) {
      return '';
    }
  }

  async function loadIceServers() {
    try {
      const r = await fetch(cfg.gw + '/ice-servers?id=' + encodeURIComponent(S.ssid), { headers: authHeaders(), credentials: 'same-origin' });
      if (!r.ok) return;
      const j = await r.json();
      const list = Array.isArray(j) ? j : (j.iceServers || (j.data && j.data.iceServers) || []);
      S.iceServers = list.map((s) => ({ urls: s.urls || s.url, username: s.username, credential: s.credential }));
    } catch (e) { S.iceServers = []; }
  }

  async function pollLoop(gen) {
    while (S.ssid && gen === S.gen) {
      const ac = new AbortController();
      S.pollAbort = ac;
      const t = setTimeout(() => ac.abort(), cfg.pollMs + 5000);
      let r;
      try {
        r = await fetch(cfg.gw + '/wait?id=' + encodeURIComponent(S.ssid), { signal: ac.signal, credentials: 'same-origin', cache: 'no-store' });
      } catch (e) {
        clearTimeout(t);
        if (gen !== S.gen) return;
        if (ac.signal.aborted) continue; // our own poll timeout: poll again
        setGw('unreachable');
        showError('Lost contact with the WebRTC gateway; retrying…');
        await sleep(cfg.retryMs);
        continue;
      }
      clearTimeout(t);
      if (gen !== S.gen) return;
      if (r.status === 200) {
        if ($('gw-state').dataset.state !== 'signed-in') { setGw('signed-in'); showError(''); }
        const text = await r.text();
        if (text.trim()) {
          try { await handleMessage(text, r.headers.get('Pragma') || ''); } catch (e) { showError('Call error: ' + e.message); }
        }
        continue;
      }
      if (r.status === 204 || r.status === 408 || r.status === 504) continue;
      S.ssid = null;
      endCall('gateway');
      signedOutByServer(r.status === 404
        ? 'This session ended: the agent signed in again elsewhere (another tab or device; one sign-in per agent), or the gateway restarted. Sign in again.'
        : 'The gateway ended this session (HTTP ' + r.status + '). Sign in again.');
      return;
    }
  }

  async function send(text) {
    if (!S.ssid) return false;
    const peer = (S.call && S.call.peer) || 'self';
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const r = await fetch(cfg.gw + '/message?from=' + encodeURIComponent(S.ssid) + '&to=' + encodeURIComponent(peer), {
          method: 'POST', body: text, headers: { 'Content-Type': 'text/plain' }, credentials: 'same-origin',
        });
        if (r.ok) return true;
        if (r.status < 500) { showError('The gateway refused a message (HTTP ' + r.status + ').'); return false; }
      } catch (e) { /* retry below */ }
      await sleep(cfg.retryMs);
    }
    showError('The gateway did not take our message; the call may be lost.');
    return false;
  }
  const sendRSMP = (m) => send('RSMP ' + JSON.stringify(m));

  async function gwSignOut() {
    const ssid = S.ssid;
    S.gen++;
    S.ssid = null;
    if (S.pollAbort) S.pollAbort.abort();
    if (ssid) {
      try { await fetch(cfg.gw + '/sign_out?id=' + encodeURIComponent(ssid), { credentials: 'same-origin' }); } catch (e) { /* gone anyway */ }
    }
    setGw('offline');
  }

  // ---- incoming messages --------------------------------------------------
  async function handleMessage(text, peer) {
    const t = text.trim();
    if (t === 'BYE' || t.startsWith('BYE ')) { endCall('remote'); return; }
    if (t === 'INVITE' || t.startsWith('INVITE ')) { await onInvite(peer); return; }
    if (t.startsWith('EVENT-TALK')) { await onEventTalk(); return; }
    if (t.startsWith('EVENT-HOLD')) { await onEventHold(); return; }
    if (t.startsWith('PUT-STATS')) { $('stats').textContent = t.slice(9).trim(); return; }
    if (t.startsWith('INFO-PEER') || t.startsWith('INFO-MAP')) { notice('Data from the far end: ' + decodeURIComponent(t.slice(t.indexOf(' ') + 1))); return; }
    const i = t.indexOf('{');
    if (i < 0) return;
    let m;
    try { m = JSON.parse(t.slice(i)); } catch (e) { return; }
    if (m.errorType || t.startsWith('ERROR')) { showError('Gateway error: ' + (m.errorType || '') + ' ' + (m.errorMessage || m.message || '')); return; }
    switch (m.messageType) {
      case 'OFFER': await onOffer(m, peer); break;
      case 'ANSWER': await onAnswer(m); break;
      case 'OK': break;
      default: break;
    }
  }

  function newCall(peer, offer) {
    const data = {};
    ((offer && offer.attacheddata) || []).forEach((kv) => { if (kv && kv.key !== undefined) data[kv.key] = kv.value; });
    S.call = {
      peer, offer, data, localId: ++S.sessionCounter, remoteId: offer ? offer.offererSessionId : undefined,
      seq: offer ? (offer.seq || 1) : 1, pc: null, stream: null, state: 'ringing', started: 0, pending: null, muted: false, held: false,
    };
    showRinging();
  }

  function callerText(call) {
    const d = call.data;
    const who = d.phoneNumber || d.customerNumber || d._customer_number || d.ani || d.ANI || d.caller || d.From || d.from || '';
    return who ? who : (call.peer || 'unknown caller');
  }

  function showRinging() {
    const c = S.call;
    setText('call-state', 'Ringing', 'ringing');
    $('caller').textContent = 'Call from ' + callerText(c);
    // A cue where the agent may be looking: the tab's title, and the status
    // region screen readers announce.
    document.title = 'Ringing: ' + callerText(c) + ' | ' + S.title;
    notice('Incoming call from ' + callerText(c));
    const tb = $('call-data').tBodies[0];
    tb.textContent = '';
    Object.keys(c.data).sort().forEach((k) => {
      const tr = tb.insertRow();
      const th = document.createElement('th'); th.textContent = k; tr.appendChild(th);
      const td = tr.insertCell(); td.textContent = typeof c.data[k] === 'string' ? c.data[k] : JSON.stringify(c.data[k]);
      td.dataset.key = k;
    });
    buttons();
  }

  function buttons() {
    const st = S.call ? S.call.state : 'idle';
    const live = st === 'connected' || st === 'held' || st === 'connecting';
    $('btn-answer').disabled = st !== 'ringing';
    // Ready or Not Ready during a call is refused by Voice: offer neither.
    $('btn-ready').disabled = $('btn-notready').disabled = st === 'ringing' || live;
    $('btn-call').disabled = !(st === 'idle' || st === 'ended');
    $('btn-hangup').disabled = !(st === 'ringing' || live);
    $('btn-hold').disabled = !(st === 'connected' || st === 'held');
    $('btn-mute').disabled = !live;
    document.querySelectorAll('#dtmf-pad button').forEach((b) => { b.disabled = st !== 'connected'; });
    // Toggle buttons keep one accessible name and say their state with
    // aria-pressed ("Hold, pressed"); the visible text says what a click does.
    $('btn-hold').textContent = st === 'held' ? 'Resume' : 'Hold';
    $('btn-hold').setAttribute('aria-label', 'Hold');
    $('btn-hold').setAttribute('aria-pressed', String(st === 'held'));
  }

  async function onOffer(m, peer) {
    if (!S.call || S.call.state === 'ended') { newCall(peer, m); return; }
    const c = S.call;
    if (c.state === 'ringing') { c.offer = m; return; } // the gateway refreshed its offer
    // A re-offer during the call (remote hold/resume or a media change).
    c.remoteId = m.offererSessionId || c.remoteId;
    c.seq = m.seq || c.seq + 1;
    await c.pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
    await addCandidates(c.pc, m.Candidates);
    await c.pc.setLocalDescription(await c.pc.createAnswer());
    const cands = await gathered(c);
    await sendRSMP({ messageType: 'ANSWER', sdp: c.pc.localDescription.sdp, Candidates: cands,
      offererSessionId: c.remoteId, answererSessionId: c.localId, seq: c.seq });
    const remoteHeld = /a=(inactive|sendonly)/.test(m.sdp);
    setText('call-state', remoteHeld ? 'Held by the far end' : 'Connected', remoteHeld ? 'held-remote' : (c.held ? 'held' : 'connected'));
  }

  async function onAnswer(m) {
    const c = S.call;
    if (!c || !c.pending) return;
    const p = c.pending;
    c.pending = null;
    c.remoteId = m.answererSessionId || c.remoteId;
    await c.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
    await addCandidates(c.pc, m.Candidates);
    await sendRSMP({ messageType: 'OK', offererSessionId: c.localId, answererSessionId: c.remoteId, seq: m.seq || c.seq });
    p.resolve();
  }

  async function onInvite(peer) {
    if (!S.call || S.call.state === 'ended') { newCall(peer, null); return; } // answering will send our offer
    if (S.call.pc) await reoffer(S.call.held ? 'inactive' : 'sendrecv');
  }

  async function onEventTalk() {
    if (!S.call) return;
    if (S.call.state === 'ringing') await answer();
    else if (S.call.state === 'held') await hold(false);
  }
  async function onEventHold() {
    if (S.call && S.call.state === 'connected') await hold(true);
  }

  // ---- media --------------------------------------------------------------
  async function addCandidates(pc, list) {
    for (const c of (list || [])) {
      if (!c || !c.candidate) continue;
      try { await pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex }); } catch (e) { /* the SDP may already hold it */ }
    }
  }

  // gathered waits for ICE gathering to finish (or iceMs) and returns the
  // candidates for the bulk Candidates list.
  function gathered(c) {
    const pc = c.pc;
    return new Promise((resolve) => {
      const done = () => { clearTimeout(t); pc.removeEventListener('icegatheringstatechange', check); resolve(c.cands.slice()); };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      const t = setTimeout(done, cfg.iceMs);
      pc.addEventListener('icegatheringstatechange', check);
      check();
    });
  }

  function newPeerConnection(c) {
    const pc = new RTCPeerConnection({ iceServers: S.iceServers });
    c.cands = [];
    pc.onicecandidate = (e) => {
      if (e.candidate && e.candidate.candidate) {
        c.cands.push({ sdpMLineIndex: e.candidate.sdpMLineIndex, sdpMid: e.candidate.sdpMid, candidate: e.candidate.candidate });
      }
    };
    pc.ontrack = (e) => {
      const stream = (e.streams && e.streams[0]) || new MediaStream([e.track]);
      // Chrome feeds WebAudio from a remote stream only while a media element plays it.
      $('remote-audio').srcObject = stream;
      $('remote-audio').play().catch(() => {});
      meter('speaker', stream);
    };
    pc.onconnectionstatechange = () => {
      if (!S.call || S.call.pc !== pc) return;
      if (pc.connectionState === 'connected' && S.call.state === 'connecting') connected();
      if (pc.connectionState === 'failed') { showError('Media could not connect (ICE failed). Check TURN and firewalls.'); }
    };
    pc.oniceconnectionstatechange = () => {
      if (!S.call || S.call.pc !== pc) return;
      if ((pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed') && S.call.state === 'connecting') connected();
    };
    return pc;
  }

  async function getMic() {
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true }, video: false });
    } catch (e) {
      if (e.name === 'NotAllowedError' || e.name === 'SecurityError') {
        throw new Error('Microphone access was denied. Allow the microphone for this site and press Answer again.');
      }
      if (e.name === 'NotFoundError' || e.name === 'OverconstrainedError') {
        throw new Error('No microphone was found. Plug one in and press Answer again.');
      }
      throw new Error('The microphone could not be opened: ' + e.message);
    }
  }

  // attachMic gives the call its microphone and a PeerConnection sending it.
  function attachMic(c, stream) {
    c.stream = stream;
    meter('mic', stream);
    c.pc = newPeerConnection(c);
    stream.getAudioTracks().forEach((t) => c.pc.addTrack(t, stream));
  }

  async function answer() {
    const c = S.call;
    if (!c || c.state !== 'ringing') return;
    showError('');
    audioContext();
    let stream;
    try { stream = await getMic(); } catch (e) { showError(e.message); return; }
    if (S.call !== c || c.state !== 'ringing') { stream.getTracks().forEach((t) => t.stop()); return; }
    attachMic(c, stream);
    c.state = 'connecting';
    setText('call-state', 'Connecting', 'connecting');
    buttons();
    if (c.offer) {
      await c.pc.setRemoteDescription({ type: 'offer', sdp: c.offer.sdp });
      await addCandidates(c.pc, c.offer.Candidates);
      await c.pc.setLocalDescription(await c.pc.createAnswer());
      const cands = await gathered(c);
      await sendRSMP({ messageType: 'ANSWER', sdp: c.pc.localDescription.sdp, Candidates: cands,
        offererSessionId: c.remoteId, answererSessionId: c.localId, seq: c.seq });
    } else {
      await offer('sendrecv');
    }
  }

  // dial calls a number from the browser (1pcc, the gateway's
  // enable1pccCalls): our OFFER goes to the number, and the gateway answers
  // once the far end does (or sends ERROR and BYE when it fails).
  async function dial(ev) {
    if (ev) ev.preventDefault();
    const number = $('dial-number').value.trim().replace(/[\s().-]/g, '');
    if (S.call && S.call.state !== 'ended') return;
    if (!number) { showError('Type a number to call.'); return; }
    if (!S.ssid) { showError('Not signed in to the WebRTC gateway yet.'); return; }
    showError('');
    audioContext();
    let stream;
    try { stream = await getMic(); } catch (e) { showError(e.message); return; }
    newCall(number, null);
    const c = S.call;
    c.state = 'connecting';
    setText('call-state', 'Calling', 'dialing');
    $('caller').textContent = 'Calling ' + number;
    attachMic(c, stream);
    buttons();
    try {
      await offer('sendrecv', cfg.noAnswerMs);
    } catch (e) {
      if (S.call === c && c.state !== 'ended') { showError('The call failed: ' + e.message); await hangup(); }
    }
  }

  // offer sends our OFFER and resolves when the ANSWER is applied (within
  // waitMs, 15 s by default).
  async function offer(direction, waitMs) {
    const c = S.call;
    // Hold is a re-offer with a=inactive (Grtc holdCall); resume goes back to sendrecv.
    c.pc.getTransceivers().forEach((tr) => { if (!tr.stopped && tr.currentDirection !== 'stopped') tr.direction = direction; });
    await c.pc.setLocalDescription(await c.pc.createOffer());
    const cands = await gathered(c);
    c.seq += 1;
    const answered = new Promise((resolve, reject) => { c.pending = { resolve, reject }; });
    const sent = await sendRSMP({ messageType: 'OFFER', sdp: c.pc.localDescription.sdp, Candidates: cands,
      offererSessionId: c.localId, answererSessionId: c.remoteId, seq: c.seq,
      tiebreaker: Math.floor(Math.random() * 0x7fffffff) });
    if (!sent) { c.pending = null; throw new Error('the gateway refused it'); }
    await Promise.race([answered, sleep(waitMs || 15000).then(() => { throw new Error('the gateway did not answer our offer'); })]);
  }
  const reoffer = (direction) => offer(direction);

  function connected() {
    const c = S.call;
    document.title = S.title;
    notice('');
    c.state = 'connected';
    c.started = Date.now();
    setText('call-state', 'Connected', 'connected');
    $('caller').textContent = 'Talking to ' + callerText(c);
    S.timer = setInterval(tickTimer, 250);
    tickTimer();
    buttons();
  }

  function tickTimer() {
    const c = S.call;
    if (!c || !c.started) return;
    const s = Math.floor((Date.now() - c.started) / 1000);
    const el = $('call-timer');
    el.dataset.seconds = String(s);
    el.textContent = String(Math.floor(s / 60)).padStart(2, '0') + ':' + String(s % 60).padStart(2, '0');
  }

  async function hold(on) {
    const c = S.call;
    if (!c || !c.pc) return;
    try {
      await reoffer(on ? 'inactive' : 'sendrecv');
      c.held = on;
      c.state = on ? 'held' : 'connected';
      setText('call-state', on ? 'On hold' : 'Connected', c.state);
    } catch (e) {
      showError((on ? 'Hold' : 'Resume') + ' failed: ' + e.message);
    }
    buttons();
  }

  function mute() {
    const c = S.call;
    if (!c || !c.stream) return;
    c.muted = !c.muted;
    c.stream.getAudioTracks().forEach((t) => { t.enabled = !c.muted; });
    $('btn-mute').textContent = c.muted ? 'Unmute' : 'Mute';
    $('btn-mute').setAttribute('aria-label', 'Mute');
    $('btn-mute').setAttribute('aria-pressed', String(c.muted));
  }

  function dtmf(digit) {
    const c = S.call;
    if (!c || !c.pc || c.state !== 'connected') return;
    const sender = c.pc.getSenders().find((s) => s.track && s.track.kind === 'audio');
    if (!sender || !sender.dtmf) { showError('This browser cannot send DTMF on this call.'); return; }
    sender.dtmf.insertDTMF(digit, 100, 50);
    $('dtmf-sent').textContent += digit;
  }

  async function hangup() {
    if (!S.call) return;
    await send('BYE');
    endCall('local');
  }

  function endCall(why) {
    const c = S.call;
    if (!c) return;
    if (c.pending) { c.pending.reject(new Error('call ended')); c.pending = null; }
    if (c.pc) { try { c.pc.close(); } catch (e) { /* closed */ } }
    if (c.stream) c.stream.getTracks().forEach((t) => t.stop());
    c.state = 'ended';
    clearInterval(S.timer);
    S.timer = null;
    unmeter('mic');
    unmeter('speaker');
    $('remote-audio').srcObject = null;
    setText('call-state', why === 'remote' ? 'Ended by the far end' : 'Ended', 'ended');
    $('caller').textContent = 'Last call: ' + callerText(c);
    document.title = S.title;
    notice('');
    buttons();
    readAgentState(); // Voice moved it: wrap-up, or NotReady after a call that rang out
  }

  // ---- level meters ---------------------------------------------------------
  function audioContext() {
    if (!S.audioCtx) S.audioCtx = new (window.AudioContext || window.webkitAudioContext)();
    if (S.audioCtx.state === 'suspended') S.audioCtx.resume().catch(() => {});
    return S.audioCtx;
  }
  function meter(name, stream) {
    unmeter(name);
    const ctx = audioContext();
    const src = ctx.createMediaStreamSource(stream);
    const an = ctx.createAnalyser();
    an.fftSize = 2048;
    src.connect(an);
    S.meters[name] = { src, an, buf: new Float32Array(an.fftSize) };
  }
  function unmeter(name) {
    const m = S.meters[name];
    if (m) { try { m.src.disconnect(); } catch (e) { /* gone */ } delete S.meters[name]; }
    showLevel(name, -100);
  }
  function showLevel(name, db) {
    const el = $(name === 'mic' ? 'mic-level' : 'speaker-level');
    el.value = Math.max(db, -60);
    el.dataset.dbfs = db.toFixed(1);
    $(name === 'mic' ? 'mic-db' : 'speaker-db').textContent = db <= -100 ? '–' : db.toFixed(1) + ' dBFS';
  }
  setInterval(() => {
    for (const name of Object.keys(S.meters)) {
      const m = S.meters[name];
      m.an.getFloatTimeDomainData(m.buf);
      let sum = 0;
      for (let i = 0; i < m.buf.length; i++) sum += m.buf[i] * m.buf[i];
      const rms = Math.sqrt(sum / m.buf.length);
      const db = rms > 0 ? Math.max(20 * Math.log10(rms), -100) : -100;
      // Peaks fall back at 20 dB/s, as a level meter's do: a short sound
      // (a syllable, a click) stays readable instead of flickering.
      m.shown = Math.max(db, (m.shown ?? -100) - 2);
      showLevel(name, m.shown);
    }
  }, 100);

  // ---- wiring ---------------------------------------------------------------
  function showPhone(on) {
    $('login-panel').hidden = on;
    $('phone-panel').hidden = !on;
    $(on ? 'btn-ready' : 'login-user').focus(); // where the next action is, not the page body
  }

  async function signOut() {
    if (S.call && S.call.state !== 'ended') await hangup();
    await gwSignOut();
    // Out of GAuth as well: the next sign-in asks for the password.
    try { await fetch('/auth/v3/sign-out', { method: 'POST', headers: authHeaders(), credentials: 'same-origin' }); } catch (e) { /* signed out here anyway */ }
    sessionStorage.removeItem('sp.token');
    S.token = null;
    showError('');
    showPhone(false);
  }

  async function start() {
    S.title = document.title;
    $('login-form').addEventListener('submit', login);
    $('btn-sso').addEventListener('click', (e) => { e.preventDefault(); startAuthorize(); });
    $('btn-ready').addEventListener('click', () => setAgentState('Ready'));
    $('btn-notready').addEventListener('click', () => setAgentState('NotReady'));
    $('btn-answer').addEventListener('click', () => answer().catch((e) => showError('Answer failed: ' + e.message)));
    $('btn-hangup').addEventListener('click', () => hangup());
    $('dial-form').addEventListener('submit', (e) => { dial(e).catch((err) => showError('Call failed: ' + err.message)); });
    $('btn-hold').addEventListener('click', () => hold(!(S.call && S.call.held)));
    $('btn-mute').addEventListener('click', mute);
    $('btn-signout').addEventListener('click', signOut);
    $('btn-stats').addEventListener('click', () => send('GET-STATS'));
    document.querySelectorAll('#dtmf-pad button').forEach((b) => b.addEventListener('click', () => dtmf(b.dataset.digit)));
    document.addEventListener('keydown', (e) => {
      if (/^[0-9*#]$/.test(e.key) && S.call && S.call.state === 'connected' && e.target.tagName !== 'INPUT') dtmf(e.key);
    });
    window.addEventListener('pagehide', () => {
      if (S.ssid) fetch(cfg.gw + '/sign_out?id=' + encodeURIComponent(S.ssid), { keepalive: true, credentials: 'same-origin' }).catch(() => {});
    });

    const params = new URLSearchParams(location.search);
    if (params.has('code') || params.has('error')) await completeAuthorize(params);
    S.token = sessionStorage.getItem('sp.token');
    if (!S.token || !(await loadUser())) {
      sessionStorage.removeItem('sp.token');
      S.token = null;
      showPhone(false);
      return;
    }
    showPhone(true);
    readAgentState();
    // Voice changes the state by itself too (wrap-up ending, a call that
    // rang out making the agent NotReady): follow it.
    setInterval(readAgentState, 5000);
    gwSignIn();
  }

  // Test hook: the call state and gateway session id.
  window.cxlabSoftphone = { state: () => (S.call ? S.call.state : 'idle'), ssid: () => S.ssid };
  start();
})();
