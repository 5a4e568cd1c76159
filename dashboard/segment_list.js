// The Match page's segments: a list drawn from dashboard.results.SegmentListSpec.to_data().
//
// Only the rows in view are in the page (they are placed absolutely in a scrolled body), so a
// list of thousands of segments draws as fast as one of ten. Streamlit calls this function on
// every rerun with the new data; the list keeps its identity (a keyed component), its sort order
// and its scroll position. A click on a row (or Enter on it) sends the segment's first frame
// (trigger value "frame").
const COLUMNS = [
  // [title, key to sort by, text of a row, numeric]
  ["", null, null, false],
  ["image", (d, i) => d.images[d.image[i]][1].toLowerCase(), null, false],
  ["from", (d, i) => d.start_s[i], (d, i) => d.start_text[i], true],
  ["to", (d, i) => d.end_s[i], (d, i) => d.end_text[i], true],
  ["duration (s)", (d, i) => d.end_s[i] - d.start_s[i], (d, i) => (d.end_s[i] - d.start_s[i]).toFixed(2), true],
  ["peak", (d, i) => d.peak[i], (d, i) => d.peak[i].toFixed(3), true],
  ["mean", (d, i) => d.mean[i], (d, i) => d.mean[i].toFixed(3), true],
  ["frames", (d, i) => d.frames[i], (d, i) => String(d.frames[i]), true],
];

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".webssl-segments");
  const head = root.querySelector(".head");
  const body = root.querySelector(".body");
  const spacer = body.querySelector(".spacer");
  const n = data.image.length;
  const rowPx = data.row_px;
  head.className = "head row";
  body.style.height = `${Math.max(1, Math.min(n, data.visible_rows)) * rowPx}px`;
  spacer.style.height = `${n * rowPx}px`;
  root.__sort = root.__sort || { column: 2, down: false }; // time order first; kept across reruns

  let order = [];
  function sortRows() {
    const key = COLUMNS[root.__sort.column][1];
    order = Array.from({ length: n }, (_, i) => i);
    if (key) {
      const sign = root.__sort.down ? -1 : 1;
      order.sort((a, b) => {
        const ka = key(data, a), kb = key(data, b);
        return ka < kb ? -sign : ka > kb ? sign : a - b; // ties in time order
      });
    }
    root.__order = order; // for tests
  }

  head.textContent = "";
  COLUMNS.forEach(([title, key, , numeric], c) => {
    const cell = document.createElement("span");
    cell.textContent = title;
    cell.setAttribute("role", "columnheader");
    if (numeric) cell.className = "num";
    if (key) {
      if (root.__sort.column === c) cell.classList.add("sorted", ...(root.__sort.down ? ["down"] : []));
      cell.onclick = () => {
        root.__sort = { column: c, down: root.__sort.column === c ? !root.__sort.down : numeric && c > 3 };
        head.querySelectorAll("span").forEach((s) => s.classList.remove("sorted", "down"));
        cell.classList.add("sorted", ...(root.__sort.down ? ["down"] : []));
        sortRows();
        draw(true);
      };
    }
    head.appendChild(cell);
  });

  function row(i, place) {
    const el = document.createElement("div");
    el.className = i === data.current ? "row current" : "row";
    el.style.top = `${place * rowPx}px`;
    el.tabIndex = 0;
    el.setAttribute("role", "row");
    el.dataset.segment = String(i);
    el.dataset.frame = String(data.start_frame[i]);
    const [, name, colour, preview] = data.images[data.image[i]];
    const img = document.createElement("img");
    img.src = preview;
    img.alt = "";
    img.style.outline = `2px solid ${colour}`;
    el.appendChild(img);
    const label = document.createElement("span");
    label.className = "name";
    label.setAttribute("role", "cell");
    label.textContent = name;
    label.title = name;
    el.appendChild(label);
    for (const [, , text] of COLUMNS.slice(2)) {
      const cell = document.createElement("span");
      cell.className = "num";
      cell.setAttribute("role", "cell");
      cell.textContent = text(data, i);
      el.appendChild(cell);
    }
    const choose = () => setTriggerValue("frame", data.start_frame[i]);
    el.onclick = choose;
    el.onkeydown = (event) => { if (event.key === "Enter") choose(); };
    return el;
  }

  let drawn = [-1, -1];
  function draw(force) {
    const first = Math.max(0, Math.floor(body.scrollTop / rowPx) - 2);
    const last = Math.min(n, first + data.visible_rows + 4);
    if (!force && first === drawn[0] && last === drawn[1]) return;
    drawn = [first, last];
    body.querySelectorAll(".row").forEach((el) => el.remove());
    const rows = document.createDocumentFragment();
    for (let place = first; place < last; place++) rows.appendChild(row(order[place], place));
    body.appendChild(rows);
  }

  sortRows();
  if (body.scrollTop > n * rowPx) body.scrollTop = 0; // fewer segments than before
  // the inspected segment changed (a click on the timeline, the slider): bring it into view
  if (data.current !== null && data.current !== root.__current) {
    const place = order.indexOf(data.current);
    const top = place * rowPx;
    if (top < body.scrollTop || top + rowPx > body.scrollTop + body.clientHeight) {
      body.scrollTop = Math.max(0, top - rowPx * Math.floor(data.visible_rows / 2));
    }
  }
  root.__current = data.current;
  draw(true);
  body.onscroll = () => draw(false);
}
