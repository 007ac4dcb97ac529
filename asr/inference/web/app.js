// The page of `asr serve`: the microphone over the Vosk WebSocket protocol, files over POST /transcribe.
const $ = (id) => document.getElementById(id);
const mic = $("mic");
let live = null;  // {ws, context, stream, node} while the microphone runs
let info = {streaming: true};

function say(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// One line of words, each with its start time and shaded by its confidence.
function segmentItem(words, text) {
  const item = document.createElement("li");
  if (!words.length) item.textContent = text;
  for (const w of words) {
    const span = document.createElement("span");
    span.className = "word";
    span.style.setProperty("--conf", String(w.conf ?? 0));
    span.title = `${w.start.toFixed(2)}-${w.end.toFixed(2)} s, confidence ${(w.conf ?? 0).toFixed(2)}`;
    span.append(w.word);
    const time = document.createElement("small");
    time.textContent = w.start.toFixed(2);
    span.append(time);
    item.append(span);
  }
  return item;
}

// -- live recognition ------------------------------------------------------------------------
function setMic(running) {
  const label = running ? "Stop microphone" : "Start microphone";
  mic.setAttribute("aria-label", label);
  mic.setAttribute("aria-pressed", String(running));
  $("mic-text").textContent = label;
  $("partial").classList.toggle("live", running);  // keeps its line while listening
}

function onMessage(event) {
  const reply = JSON.parse(event.data);
  if (reply.error) {
    say($("status"), `The server refused the stream: ${reply.error}`, true);
  } else if ("partial" in reply) {
    $("partial").textContent = reply.partial;
  } else if (reply.text) {
    $("finals").append(segmentItem(reply.result || [], reply.text));
    $("partial").textContent = "";
  }
}

async function pcmNode(context, stream) {
  await context.audioWorklet.addModule("worklet.js");
  const node = new AudioWorkletNode(context, "pcm-blocks");
  context.createMediaStreamSource(stream).connect(node);
  node.connect(context.destination);  // silent (the worklet writes no output), but it keeps the graph pulled
  await context.resume();
  return node;
}

// The context is made inside the click (browsers let audio start on a user's gesture), at 16 kHz: the
// browser resamples the microphone. A browser that cannot uses its own rate; the server resamples.
function newContext() {
  try {
    return new AudioContext({sampleRate: 16000});
  } catch (err) {
    return new AudioContext();
  }
}

async function openMicrophone(context) {
  const stream = await navigator.mediaDevices.getUserMedia(
    {audio: {channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
  try {
    return {stream, context, node: await pcmNode(context, stream)};
  } catch (err) {  // e.g. a microphone at another rate that this browser will not connect
    context.close();
    const native = new AudioContext();
    return {stream, context: native, node: await pcmNode(native, stream)};
  }
}

function microphoneError(err) {
  if (err.name === "NotAllowedError" || err.name === "SecurityError") {
    return "The microphone was refused. Allow it for this page in the browser's site settings, then start again.";
  }
  if (err.name === "NotFoundError") return "No microphone was found.";
  return `The microphone cannot start: ${err.message || err.name}`;
}

async function start() {
  if (!info.streaming) {
    say($("status"), info.note, true);
    return;
  }
  say($("status"), "Starting the microphone…");
  const context = newContext();
  let audio;
  try {
    audio = await openMicrophone(context);
  } catch (err) {
    context.close().catch(() => {});  // already closed by a fallback that failed too
    say($("status"), microphoneError(err), true);
    return;
  }
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`);
  ws.binaryType = "arraybuffer";
  live = {ws, ...audio};
  setMic(true);
  ws.onopen = () => {
    ws.send(JSON.stringify({config: {sample_rate: audio.context.sampleRate, words: 1}}));
    audio.node.port.onmessage = (event) => ws.readyState === WebSocket.OPEN && ws.send(event.data);
    say($("status"), "Listening: speak now.");
  };
  ws.onmessage = onMessage;
  ws.onclose = (event) => {
    if (live && live.ws === ws) stopAudio();
    if (event.code === 1000) {
      say($("status"), "Stopped.");
    } else if (!$("status").classList.contains("error")) {  // keep the server's own reason, if it sent one
      say($("status"), `The connection to the server was lost (code ${event.code}). Is asr serve still running? ` +
          "Reload the page to try again.", true);
    }
  };
}

function stopAudio() {
  const {stream, context} = live;
  stream.getTracks().forEach((track) => track.stop());
  context.close();
  live = null;
  setMic(false);
}

function stop() {
  const {ws, node} = live;
  node.port.onmessage = (event) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (event.data.last === undefined) {
      ws.send(event.data);
      return;
    }
    if (event.data.last.byteLength) ws.send(event.data.last);
    ws.send(JSON.stringify({eof: 1}));  // the final result comes back, then the server closes
    stopAudio();
  };
  node.port.postMessage("flush");
  say($("status"), "Finishing…");
}

mic.addEventListener("click", () => (live ? stop() : start()));

// -- files -----------------------------------------------------------------------------------
async function post(url, body) {
  let response;
  try {
    response = await fetch(url, {method: "POST", body});
  } catch (err) {
    throw new Error("The server cannot be reached. Is asr serve still running?");
  }
  const text = await response.text();
  if (!response.ok) {
    let reason = text;
    try { reason = JSON.parse(text).error; } catch (err) { /* not JSON: the text itself */ }
    throw new Error(`${response.status}: ${reason}`);
  }
  return text;
}

function download(id, name, text, type) {
  const link = $(id);
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([text], {type}));
  link.download = name;
}

async function transcribe(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  say($("file-status"), `Transcribing ${file.name}…`);
  $("file-result").hidden = true;
  try {
    const json = await post("transcribe", form);
    const transcript = JSON.parse(json);
    $("file-text").textContent = transcript.text || "(no speech recognised)";
    $("file-segments").replaceChildren(...transcript.segments.map((s) => segmentItem(s.words, s.text)));
    const base = file.name.replace(/\.[^.]*$/, "");
    download("download-json", `${base}.json`, json, "application/json");
    for (const format of ["srt", "vtt"]) {
      download(`download-${format}`, `${base}.${format}`, await post(`convert?format=${format}`, json), "text/plain");
    }
    $("file-result").hidden = false;
    say($("file-status"), `${file.name}: ${transcript.duration.toFixed(1)} s of audio.`);
  } catch (err) {
    say($("file-status"), `${file.name}: ${err.message}`, true);
  }
}

$("file").addEventListener("change", (event) => event.target.files[0] && transcribe(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files[0]) transcribe(event.dataTransfer.files[0]);
});

// -- what the server offers ------------------------------------------------------------------
fetch("info").then((r) => r.json()).then((body) => {
  info = body;
  if (!info.streaming) say($("mic-note"), info.note);
}).catch(() => say($("status"), "The server cannot be reached. Is asr serve still running?", true));
