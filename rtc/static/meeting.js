// Telework Hub meeting page: one RTCPeerConnection to our SFU, signalling over the room's WebSocket.
// The server always offers; this page only answers. Protocol: README, "RTC / meetings".

const root = document.getElementById("meeting");
const roomId = root.dataset.room;
const T = JSON.parse(root.dataset.messages);
const $ = (id) => document.getElementById(id);
const t = (key, params = {}) => (T[key] || key).replace(/\{(\w+)\}/g, (_, k) => params[k] ?? "");

const state = {
  ws: null, pc: null, me: null, local: null, screen: null,
  muted: false, cameraOff: false, audioOnly: false, hand: false, sharing: false,
  roster: new Map(), tracks: {}, leaving: false, retries: 0, fatal: false, speaker: null,
  joinStarted: 0, firstFrameAt: null,
  host: false, locked: false, waiting: [], inLobby: false,
};
const FATAL = ["not_found", "not_invited", "sign_in", "origin", "room_full", "capacity", "ended", "removed", "locked",
  "cancelled", "guest_removed"];
window.__rtc = state; // for tests and for support staff looking at getStats()

function status(text) { $("rtc-status").textContent = text; }

// ---- preview and devices ----------------------------------------------------------------------------
async function openMedia() {
  const cam = $("camera-select").value, mic = $("mic-select").value;
  const wantVideo = !state.cameraOff && !state.audioOnly;
  const constraints = {
    audio: mic ? { deviceId: { exact: mic } } : true,
    video: wantVideo ? { ...(cam ? { deviceId: { exact: cam } } : {}), width: 640, height: 360, frameRate: 30 } : false,
  };
  try {
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    $("no-devices").hidden = true;
    return stream;
  } catch (err) {
    $("no-devices").hidden = false;
    return new MediaStream();
  }
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[$("camera-select"), "videoinput"], [$("mic-select"), "audioinput"]]) {
    const current = select.value;
    select.replaceChildren();
    devices.filter((d) => d.kind === kind).forEach((d, i) => {
      const option = new Option(d.label || `${kind} ${i + 1}`, d.deviceId);
      select.append(option);
    });
    if (current) select.value = current;
  }
}

async function refreshPreview() {
  if (state.local) state.local.getTracks().forEach((track) => track.stop());
  state.local = await openMedia();
  $("preview").srcObject = state.local;
  await listDevices();
}

async function switchDevice() {
  await refreshPreview();
  if (!state.pc) return;
  const [audio] = state.local.getAudioTracks();
  const [video] = state.local.getVideoTracks();
  if (audio) audio.enabled = !state.muted;
  await publishing("audio")?.sender.replaceTrack(audio || null);
  await publishing("video")?.sender.replaceTrack(video || null);
}

// ---- signalling ---------------------------------------------------------------------------------------
function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function connect() {
  status(t("connecting"));
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/rooms/${roomId}/ws`);
  state.ws = ws;
  ws.onopen = () => send({ type: "join", audioOnly: state.audioOnly, muted: state.muted, camera: !state.cameraOff });
  ws.onmessage = (event) => handle(JSON.parse(event.data)).catch((err) => console.error(err));
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    closePeer();
    if (state.leaving || state.fatal) return;
    status(t("reconnecting"));
    // 1012: the server restarted or the worker holding the room went away; another worker takes the room
    // at once, so the first retry does not wait. Other drops back off (0.5 s doubling, at most 10 s).
    const now = event.code === 1012 && state.retries === 0;
    state.retries += 1;
    setTimeout(connect, now ? 0 : Math.min(10000, 500 * 2 ** Math.min(state.retries, 5)));
  };
}

function publishing(name) {
  // The server's first three m-lines receive what we publish: audio, video, screen.
  if (!state.pc) return null;
  const mids = { audio: "0", video: "1", screen: "2" };
  return state.pc.getTransceivers().find((tr) => tr.mid === mids[name]) || null;
}

function newPeer(iceServers) {
  closePeer();
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  state.pc = pc;
  pc.onicecandidate = (event) => { if (event.candidate) send({ type: "ice", candidate: event.candidate.toJSON() }); };
  pc.ontrack = () => renderTiles();
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed" && state.pc === pc) state.ws?.close();
  };
}

function closePeer() {
  if (state.pc) state.pc.close();
  state.pc = null;
}

async function waitForCandidates(pc, ms) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
    });
  });
}

async function answer(sdp) {
  const pc = state.pc;
  await pc.setRemoteDescription({ type: "offer", sdp });
  const [audio] = state.local.getAudioTracks();
  const [video] = state.local.getVideoTracks();
  const own = {
    audio: audio || null,
    video: state.cameraOff || state.audioOnly ? null : video || null,
    screen: state.screen ? state.screen.getVideoTracks()[0] : null,
  };
  for (const name of ["audio", "video", "screen"]) {
    const transceiver = publishing(name);
    if (!transceiver) continue;
    transceiver.direction = "sendonly";
    await transceiver.sender.replaceTrack(own[name]);
  }
  for (const transceiver of pc.getTransceivers()) {
    if (!["0", "1", "2"].includes(transceiver.mid) && transceiver.direction !== "stopped") transceiver.direction = "recvonly";
  }
  await pc.setLocalDescription(await pc.createAnswer());
  await waitForCandidates(pc, 2000);
  send({ type: "answer", sdp: pc.localDescription.sdp });
  renderTiles();
}

async function handle(msg) {
  switch (msg.type) {
    case "welcome":
      state.me = msg.you;
      state.retries = 0;
      state.roster = new Map(msg.participants.map((p) => [p.id, p]));
      state.host = Boolean(msg.host);
      state.locked = Boolean(msg.locked);
      state.waiting = msg.waiting || [];
      showCall();
      newPeer(msg.iceServers || []);
      status(t("connected"));
      break;
    case "lobby":
      state.inLobby = true;
      state.retries = 0;
      $("call").hidden = true;
      $("lobby").hidden = false;
      status(t("lobby_waiting"));
      $("btn-lobby-leave").focus();
      return;
    case "admitted":
      status(t("admitted"));
      return;
    case "lobby-list": {
      const before = new Set(state.waiting.map((p) => p.id));
      state.waiting = msg.waiting || [];
      const newcomer = state.waiting.find((p) => !before.has(p.id));
      if (newcomer) status(t("someone_waiting", { name: newcomer.name }));
      break;
    }
    case "locked":
      state.locked = Boolean(msg.locked);
      status(t(state.locked ? "locked_on" : "locked_off"));
      break;
    case "muted-by-host":
      state.muted = true;
      state.local?.getAudioTracks().forEach((track) => { track.enabled = false; });
      if (state.roster.get(state.me)) state.roster.get(state.me).muted = true;
      status(t("muted_by_host"));
      break;
    case "denied":
    case "removed":
    case "ended":
      finish(t(msg.type), msg.type === "denied");
      return;
    case "offer":
      state.tracks = msg.tracks || {};
      await answer(msg.sdp);
      break;
    case "tracks":
      state.tracks = msg.tracks || {};
      renderTiles();
      break;
    case "joined":
      if (msg.participant.id !== state.me) status(t("joined", { name: msg.participant.name }));
      state.roster.set(msg.participant.id, msg.participant);
      break;
    case "left": {
      const who = state.roster.get(msg.participant);
      if (who) status(t("left", { name: who.name }));
      state.roster.delete(msg.participant);
      break;
    }
    case "state": {
      const who = state.roster.get(msg.participant);
      for (const flag of ["muted", "camera", "screen", "hand"]) if (who && flag in msg) who[flag] = msg[flag];
      break;
    }
    case "speaker":
      state.speaker = msg.participant;
      break;
    case "chat":
      addChat(msg);
      return;
    case "error":
      if (!FATAL.includes(msg.code)) { status(msg.message || t(`error.${msg.code}`)); return; }
      state.fatal = true;
      status(msg.message || t(`error.${msg.code}`));
      $("call").hidden = true;
      $("lobby").hidden = true;
      $("prejoin").hidden = false;
      return;
    default:
      return;
  }
  renderTiles();
}

// ---- tiles, participants, chat ------------------------------------------------------------------------
function remoteTracks(participantId) {
  const found = {};
  if (!state.pc) return found;
  for (const transceiver of state.pc.getTransceivers()) {
    const slot = state.tracks[transceiver.mid];
    if (slot && slot.participant === participantId) found[slot.track] = transceiver.receiver.track;
  }
  return found;
}

function tile(key, label) {
  let li = document.getElementById(`tile-${key}`);
  if (!li) {
    li = document.createElement("li");
    li.id = `tile-${key}`;
    li.className = "tile";
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const name = document.createElement("p");
    name.className = "name";
    li.append(video, name);
    $("tiles").append(li);
    video.addEventListener("loadeddata", () => {
      if (state.firstFrameAt === null && key !== "me") state.firstFrameAt = performance.now();
    });
  }
  li.querySelector(".name").textContent = label;
  return li;
}

function setStream(video, tracks) {
  const current = video.srcObject ? video.srcObject.getTracks() : [];
  if (tracks.length === current.length && tracks.every((tr) => current.includes(tr))) return;
  video.srcObject = tracks.length ? new MediaStream(tracks) : null;
}

function renderTiles() {
  const seen = new Set();
  for (const person of state.roster.values()) {
    const isMe = person.id === state.me;
    const flags = [person.muted ? t("muted") : "", person.hand ? `✋ ${t("hand")}` : "",
      state.speaker === person.id ? t("speaking") : ""].filter(Boolean).join(" · ");
    const label = `${person.name}${isMe ? " " + t("you") : ""}${flags ? " — " + flags : ""}`;
    const key = isMe ? "me" : person.id;
    const li = tile(key, label);
    seen.add(li.id);
    li.classList.toggle("speaking", state.speaker === person.id);
    li.classList.toggle("camera-off", !person.camera);
    const video = li.querySelector("video");
    if (isMe) {
      video.muted = true;
      setStream(video, state.local ? state.local.getVideoTracks() : []);
      continue;
    }
    const tracks = remoteTracks(person.id);
    setStream(video, [tracks.audio, tracks.video].filter(Boolean));
    if (person.screen && tracks.screen) {
      const screenTile = tile(`${person.id}-screen`, t("screen_of", { name: person.name }));
      screenTile.classList.add("screen");
      seen.add(screenTile.id);
      const screenVideo = screenTile.querySelector("video");
      screenVideo.muted = true;
      setStream(screenVideo, [tracks.screen]);
    }
  }
  for (const li of [...$("tiles").children]) if (!seen.has(li.id)) li.remove();
  renderPeople();
  renderButtons();
}

function smallButton(label, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

function renderPeople() {
  const list = $("people-list");
  list.replaceChildren();
  for (const person of state.roster.values()) {
    const li = document.createElement("li");
    const flags = [person.host ? t("host") : "", person.guest ? t("guest") : "", person.muted ? t("muted") : "",
      person.hand ? `✋ ${t("hand")}` : ""].filter(Boolean).join(" · ");
    const label = document.createElement("span");
    label.textContent = `${person.name}${person.id === state.me ? " " + t("you") : ""}${flags ? " — " + flags : ""}`;
    li.append(label);
    if (state.host && person.id !== state.me) {
      if (!person.muted) {
        li.append(" ", smallButton(t("mute_person", { name: person.name }),
          () => send({ type: "mute", participant: person.id })));
      }
      if (!person.host) {
        li.append(" ", smallButton(t("remove_person", { name: person.name }), () => {
          if (confirm(t("remove_confirm", { name: person.name }))) send({ type: "remove", participant: person.id });
        }, "danger"));
      }
    }
    list.append(li);
  }
  $("people-count").textContent = String(state.roster.size);
  renderHost();
}

function renderHost() {
  $("host-panel").hidden = !state.host;
  if (!state.host) return;
  const list = $("waiting-list");
  list.replaceChildren();
  for (const person of state.waiting) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = `${person.name}${person.guest ? ` (${t("guest")})` : ""}`;
    li.append(label, " ", smallButton(t("admit"), () => send({ type: "admit", id: person.id })),
      " ", smallButton(t("deny"), () => send({ type: "deny", id: person.id }), "danger"));
    list.append(li);
  }
  $("waiting-count").textContent = String(state.waiting.length);
  $("waiting-empty").hidden = state.waiting.length > 0;
  button("btn-lock", state.locked, t("unlock"), t("lock"));
}

function addChat(msg) {
  const li = document.createElement("li");
  const time = new Date(msg.at).toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" });
  const who = document.createElement("strong");
  who.textContent = msg.name;
  li.append(who, ` (${time}): `, document.createTextNode(msg.text));
  $("chat-log").append(li);
  if ($("chat-panel").hidden) $("btn-chat").textContent = `${t("chat")} •`;
}

function button(id, pressed, on, off) {
  const b = $(id);
  b.setAttribute("aria-pressed", String(pressed));
  b.textContent = pressed ? on : off;
}

function renderButtons() {
  button("btn-mute", state.muted, t("unmute"), t("mute"));
  button("btn-camera", state.cameraOff, t("camera_on"), t("camera_off"));
  button("btn-share", state.sharing, t("stop_share"), t("share"));
  button("btn-hand", state.hand, t("lower_hand"), t("raise_hand"));
  button("btn-audio-only", state.audioOnly, t("audio_only"), t("audio_only"));
  $("btn-chat").textContent = $("btn-chat").textContent.startsWith(t("chat")) ? $("btn-chat").textContent : t("chat");
  $("btn-people").textContent = `${t("participants")} (${state.roster.size})`;
  $("btn-leave").textContent = t("leave");
}

function myState(changes) {
  const me = state.roster.get(state.me);
  if (me) Object.assign(me, changes);
  send({ type: "state", ...changes });
  renderTiles();
}

// ---- controls -----------------------------------------------------------------------------------------
async function setCamera(off) {
  state.cameraOff = off;
  if (off) {
    state.local.getVideoTracks().forEach((track) => { track.stop(); state.local.removeTrack(track); });
    await publishing("video")?.sender.replaceTrack(null);
  } else {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360, frameRate: 30 } })
      .catch(() => new MediaStream());
    const [video] = stream.getVideoTracks();
    if (video) { state.local.addTrack(video); await publishing("video")?.sender.replaceTrack(video); }
  }
  myState({ camera: !off });
}

async function toggleShare() {
  if (state.sharing) {
    state.screen?.getTracks().forEach((track) => track.stop());
    state.screen = null;
    state.sharing = false;
    await publishing("screen")?.sender.replaceTrack(null);
  } else {
    try {
      state.screen = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 } });
    } catch { return; }
    const [track] = state.screen.getVideoTracks();
    track.addEventListener("ended", () => { if (state.sharing) toggleShare(); });
    state.sharing = true;
    await publishing("screen")?.sender.replaceTrack(track);
  }
  myState({ screen: state.sharing });
}

function togglePanel(buttonId, panelId) {
  const panel = $(panelId);
  panel.hidden = !panel.hidden;
  $(buttonId).setAttribute("aria-expanded", String(!panel.hidden));
  if (!panel.hidden) panel.querySelector("input, button, ul")?.focus?.();
}

function showCall() {
  state.inLobby = false;
  $("lobby").hidden = true;
  $("call").hidden = false;
}

function finish(text, mayRejoin) {
  // Left, denied, removed or ended: stop everything; only a person who left or was denied is offered to come back.
  state.leaving = true;
  state.ws?.close();
  closePeer();
  state.local?.getTracks().forEach((track) => track.stop());
  state.screen?.getTracks().forEach((track) => track.stop());
  $("call").hidden = true;
  $("lobby").hidden = true;
  $("ended").hidden = false;
  $("ended-text").textContent = text;
  $("rejoin").hidden = !mayRejoin;
  status(text);
}

function leave() {
  send({ type: "leave" });
  finish(t("left_meeting"), true);
}

$("join-button").addEventListener("click", async () => {
  state.joinStarted = performance.now();
  await previewReady;
  state.muted = $("join-muted").checked;
  state.cameraOff = $("join-camera-off").checked;
  state.audioOnly = $("join-audio-only").checked;
  if (state.cameraOff || state.audioOnly) await refreshPreview();
  state.local.getAudioTracks().forEach((track) => { track.enabled = !state.muted; });
  $("preview").srcObject = null;
  $("prejoin").hidden = true;
  $("call").hidden = false;
  state.fatal = false;
  renderButtons();
  connect();
  $("btn-mute").focus();
});
$("camera-select").addEventListener("change", switchDevice);
$("mic-select").addEventListener("change", switchDevice);
$("btn-mute").addEventListener("click", () => {
  state.muted = !state.muted;
  state.local.getAudioTracks().forEach((track) => { track.enabled = !state.muted; });
  myState({ muted: state.muted });
});
$("btn-camera").addEventListener("click", () => setCamera(!state.cameraOff));
$("btn-share").addEventListener("click", toggleShare);
$("btn-hand").addEventListener("click", () => { state.hand = !state.hand; myState({ hand: state.hand }); });
$("btn-audio-only").addEventListener("click", async () => {
  state.audioOnly = !state.audioOnly;
  send({ type: "audio-only", on: state.audioOnly });
  if (state.audioOnly !== state.cameraOff) await setCamera(state.audioOnly);
  renderButtons();
});
$("btn-chat").addEventListener("click", () => { $("btn-chat").textContent = t("chat"); togglePanel("btn-chat", "chat-panel"); });
$("btn-people").addEventListener("click", () => togglePanel("btn-people", "people-panel"));
$("btn-leave").addEventListener("click", leave);
$("btn-lobby-leave").addEventListener("click", leave);
$("btn-lock").addEventListener("click", () => send({ type: state.locked ? "unlock" : "lock" }));
$("btn-end").addEventListener("click", () => { if (confirm(t("end_confirm"))) send({ type: "end" }); });
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("chat-input");
  if (input.value.trim()) send({ type: "chat", text: input.value });
  input.value = "";
});
document.addEventListener("keydown", (event) => {
  if ($("call").hidden || event.target.matches("input, textarea, select")) return;
  if (event.altKey && event.key.toLowerCase() === "m") { event.preventDefault(); $("btn-mute").click(); }
  if (event.altKey && event.key.toLowerCase() === "v") { event.preventDefault(); $("btn-camera").click(); }
});
setInterval(() => send({ type: "ping" }), 20000);
window.addEventListener("pagehide", () => { if (!state.leaving) send({ type: "leave" }); });

const previewReady = refreshPreview().catch(() => { state.local = new MediaStream(); });
