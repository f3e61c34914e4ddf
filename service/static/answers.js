// The answers: one card per model (digit, confidence, ten bars), the chosen model's alone or, comparing,
// every model's side by side with a line saying whether they agree; and the short answer on the pad. The
// chosen card's bars are buttons: pressing one asks for that digit's explanation (see onPickDigit).

const $ = (id) => document.getElementById(id);
const cardList = $("answers");
const agreement = $("agreement");
const padAnswer = $("pad-answer");
const cards = new Map(); // model name -> {card, digit, confidence, bars, short, body}
const view = { selected: null, compare: false, target: null, onPick: () => {} };

export const percent = (p) => `${(p * 100).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;

/** What an answer says: the digit, or "?" where the service flags it unsure (`unsure`, `unsure_reasons`). */
export function verdict(body) {
  if (body.unsure === true) {
    const reasons = (body.unsure_reasons || []).join(", ") || "the model cannot tell";
    return { digit: "?", line: `Not sure — ${reasons}`, guess: `Best guess ${body.digit} (${percent(body.confidence)})`, unsure: true };
  }
  // NOTE: an answer without the field is judged as the page always did: under 60% reads as unsure, in red,
  // though the digit stays.
  const doubtful = body.unsure === undefined && body.confidence < 0.6;
  return { digit: String(body.digit), line: `${percent(body.confidence)} sure`, guess: "", unsure: false, doubtful };
}

/** One card per model of GET /models, in its order. */
export function buildAnswers(models) {
  cards.clear();
  cardList.replaceChildren(...models.map((model) => buildCard(model).card));
}

function buildCard(model) {
  const card = document.createElement("article");
  card.className = "answer-card";
  card.dataset.model = model.name;
  const name = document.createElement("h3");
  name.className = "card-name";
  name.textContent = model.name;
  const arch = document.createElement("span");
  arch.className = "card-arch";
  arch.textContent = model.architecture.name;
  name.append(" ", arch);
  const verdictBox = document.createElement("div");
  verdictBox.className = "verdict";
  const digit = document.createElement("output");
  digit.className = "digit";
  digit.setAttribute("aria-label", `Digit predicted by ${model.name}`);
  const words = document.createElement("div");
  words.className = "verdict-words";
  const confidence = document.createElement("p");
  confidence.className = "confidence";
  const guess = document.createElement("p");
  guess.className = "guess";
  words.append(confidence, guess);
  verdictBox.append(digit, words);
  const list = document.createElement("ol");
  list.className = "bars";
  list.setAttribute("aria-label", `Probability of each digit, ${model.name}`);
  const bars = [];
  for (let d = 0; d < 10; d++) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "bar";
    button.dataset.digit = String(d);
    button.setAttribute("aria-pressed", "false");
    // Enter and Space click a button too. The card's answer says which digit is the prediction.
    button.addEventListener("click", () => view.onPick(d, cards.get(model.name).body?.digit));
    const label = document.createElement("span");
    label.className = "bar-digit";
    label.textContent = String(d);
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    button.append(label, track, value);
    item.append(button);
    list.append(item);
    bars.push({ item, button, fill, value });
  }
  card.append(name, verdictBox, list);
  const entry = { card, digit, confidence, guess, list, bars, short: model.architecture.name || model.name, body: null };
  cards.set(model.name, entry);
  return entry;
}

/** Which cards show: the selected model's, or all of them; the selected card carries the test ids. */
export function showCards(selected, compare) {
  view.selected = selected;
  view.compare = compare;
  cardList.classList.toggle("comparing", compare);
  for (const [name, entry] of cards) {
    const mine = name === selected;
    entry.card.hidden = !(compare || mine);
    entry.card.classList.toggle("selected", mine && compare);
    for (const [element, id] of [[entry.digit, "prediction"], [entry.list, "probabilities"]]) {
      if (mine) element.dataset.testid = id;
      else delete element.dataset.testid;
    }
  }
  markTarget(view.target);
  summarise();
}

/** Calls `handler(digit, predicted)` when a bar of the chosen card is pressed (clicked, or Enter or Space). */
export function onPickDigit(handler) {
  view.onPick = handler;
}

/** Marks the digit being explained on the chosen card (null: none); only that card's bars can be pressed. */
export function markTarget(digit) {
  view.target = digit;
  for (const [name, entry] of cards) {
    const mine = name === view.selected;
    entry.bars.forEach((bar, d) => {
      const pressed = mine && d === digit;
      bar.item.classList.toggle("target", pressed);
      bar.button.setAttribute("aria-pressed", String(pressed));
      bar.button.disabled = !(mine && entry.body);
      bar.button.title = !(mine && entry.body) ? "" : d === entry.body.digit ? `Where it looks for ${d}` : `Why not ${d}?`;
    });
  }
}

/** Paints one model's answer (POST /predict or /feature-maps). */
export function showAnswer(name, body) {
  const entry = cards.get(name);
  if (!entry) return;
  entry.body = body;
  const v = verdict(body);
  entry.digit.textContent = v.digit;
  entry.digit.dataset.unsure = String(v.unsure);
  entry.card.classList.toggle("unsure", v.unsure);
  entry.confidence.textContent = v.line;
  entry.confidence.classList.toggle("unsure", v.unsure || v.doubtful);
  entry.guess.textContent = v.guess;
  showBars(entry, body.probabilities, body.digit);
  markTarget(view.target);
  summarise();
}

/** A model that gave no answer this time (its card says why; the others keep theirs). */
export function showNoAnswer(name, message) {
  const entry = cards.get(name);
  if (!entry) return;
  clearCard(entry, message);
  markTarget(view.target);
  summarise();
}

/** Every card back to empty, saying `message`. */
export function resetAnswers(message) {
  for (const entry of cards.values()) clearCard(entry, message);
  markTarget(view.target);
  summarise();
}

function clearCard(entry, message) {
  entry.body = null;
  entry.digit.textContent = "";
  delete entry.digit.dataset.unsure;
  entry.card.classList.remove("unsure");
  entry.confidence.textContent = message;
  entry.confidence.classList.remove("unsure");
  entry.guess.textContent = "";
  showBars(entry, null, -1);
}

function showBars(entry, probabilities, best) {
  entry.bars.forEach((bar, d) => {
    const p = probabilities ? probabilities[d] : 0;
    bar.fill.style.transform = `scaleX(${p})`;
    bar.value.textContent = probabilities ? percent(p) : "";
    bar.item.classList.toggle("best", d === best);
  });
}

// The line under the cards (comparing) and the answer on the pad (phones).
function summarise() {
  const shown = [...cards.values()].filter((entry) => !entry.card.hidden && entry.body);
  const said = shown.map((entry) => ({ entry, v: verdict(entry.body) }));
  const short = ({ entry, v }) => `${entry.short} ${v.unsure ? "not sure" : v.digit}`;
  let text = "";
  let tone = "";
  if (view.compare && said.length > 1 && said.length === cards.size) {
    const sure = said.filter(({ v }) => !v.unsure);
    const digits = new Set(sure.map(({ v }) => v.digit));
    if (!sure.length) {
      text = said.length === 2 ? "Neither model is sure." : "No model is sure.";
    } else if (sure.length === said.length && digits.size === 1) {
      text = `${said.length === 2 ? "Both" : `All ${said.length}`} models say ${sure[0].v.digit}.`;
      tone = "agree";
    } else {
      text = `They differ: ${said.map(short).join(", ")}.`;
      tone = "differ";
    }
  }
  agreement.textContent = text;
  agreement.dataset.tone = tone;
  const mine = said.find(({ entry }) => entry === cards.get(view.selected));
  if (view.compare && said.length > 1) padAnswer.textContent = said.map(short).join(" · ");
  else if (mine) padAnswer.textContent = mine.v.unsure ? "? not sure" : `${mine.v.digit} · ${percent(mine.entry.body.confidence)}`;
  else padAnswer.textContent = "";
}

/** What a screen reader hears after an update. */
export function announcement() {
  const shown = [...cards.values()].filter((entry) => !entry.card.hidden && entry.body);
  return shown
    .map((entry) => {
      const v = verdict(entry.body);
      const who = view.compare ? `${entry.short}: ` : "";
      return v.unsure ? `${who}not sure.` : `${who}looks like a ${v.digit}, ${percent(entry.body.confidence)} sure.`;
    })
    .join(" ");
}
