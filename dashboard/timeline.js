// The Match page's timeline: a canvas drawn from dashboard.timeline_data.TimelineSpec.to_data().
//
// Streamlit calls this function on every rerun with the new data; the canvas stays (a keyed
// component keeps its identity), so moving the threshold redraws about 600 points in a few
// milliseconds, where st.plotly_chart rebuilt its whole plot (the chart's identity follows its
// figure). A click selects the frame of the nearest point in time (trigger value "frame").
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".webssl-timeline");
  const canvas = root.querySelector("canvas");
  const tip = root.querySelector(".tip");
  const legend = root.querySelector(".legend");
  const brush = root.querySelector(".brush");
  const margin = { left: 52, right: 12, top: 12, bottom: 34 };
  canvas.style.height = `${data.height}px`;
  canvas.setAttribute("aria-label", data.summary);

  const n = data.time_s.length;
  const [x0, x1] = data.x_range;
  const [y0, y1] = data.y_range;
  let points = []; // CSS-pixel positions of the points, for hovering, clicks (and tests)

  function draw() {
    const width = canvas.clientWidth;
    const height = data.height;
    if (!width) return;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, width, height);
    const plotW = width - margin.left - margin.right;
    const plotH = height - margin.top - margin.bottom;
    const X = (t) => margin.left + ((t - x0) / (x1 - x0)) * plotW;
    const Y = (s) => margin.top + ((y1 - s) / (y1 - y0)) * plotH;
    const ink = getComputedStyle(root).color || "#31333f";
    g.font = "12px sans-serif";

    // grid and axes
    g.lineWidth = 1;
    g.strokeStyle = "rgba(128,128,128,0.18)";
    g.fillStyle = ink;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const [value, text] of data.y_ticks) {
      const y = Math.round(Y(value)) + 0.5;
      g.beginPath(); g.moveTo(margin.left, y); g.lineTo(width - margin.right, y); g.stroke();
      g.fillText(text, margin.left - 6, y);
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    for (const [value, text] of data.x_ticks) {
      const x = Math.round(X(value)) + 0.5;
      g.beginPath(); g.moveTo(x, margin.top); g.lineTo(x, margin.top + plotH); g.stroke();
      g.fillText(text, x, margin.top + plotH + 6);
    }

    // the band: each bucket's lowest to highest score
    const band = [];
    for (let i = 0; i < n; i++) if (data.low[i] !== null && data.score[i] !== null) band.push(i);
    if (band.length > 1) {
      g.beginPath();
      band.forEach((i, k) => (k ? g.lineTo(X(data.time_s[i]), Y(data.score[i])) : g.moveTo(X(data.time_s[i]), Y(data.score[i]))));
      for (let k = band.length - 1; k >= 0; k--) g.lineTo(X(data.time_s[band[k]]), Y(data.low[band[k]]));
      g.closePath();
      g.fillStyle = data.style.band_fill;
      g.fill();
      g.beginPath();
      band.forEach((i, k) => (k ? g.lineTo(X(data.time_s[i]), Y(data.score[i])) : g.moveTo(X(data.time_s[i]), Y(data.score[i]))));
      g.strokeStyle = data.style.band_line;
      g.stroke();
    }

    // the points: grey below the threshold, in their image's colour above it (drawn on top)
    points = [];
    for (const pass of [0, 1, 2]) {
      for (let i = 0; i < n; i++) {
        if (data.kind[i] !== pass || data.score[i] === null) continue;
        const x = X(data.time_s[i]);
        const y = Y(data.score[i]);
        g.fillStyle = data.palette[data.colour[i]];
        g.beginPath();
        if (pass === 2) { g.moveTo(x, y - 4.5); g.lineTo(x + 4.5, y); g.lineTo(x, y + 4.5); g.lineTo(x - 4.5, y); }
        else g.arc(x, y, pass === 0 ? 2.5 : 3.5, 0, 2 * Math.PI);
        g.fill();
        points.push({ x, y, i, frame: data.frame_index[i] });
      }
    }
    points.sort((a, b) => a.x - b.x);
    canvas.__points = points;

    // the threshold and the inspected frame
    g.setLineDash([6, 4]);
    g.lineWidth = 1.5;
    g.strokeStyle = data.style.threshold;
    const yt = Y(data.threshold);
    g.beginPath(); g.moveTo(margin.left, yt); g.lineTo(width - margin.right, yt); g.stroke();
    g.fillStyle = data.style.threshold;
    g.textAlign = "left";
    g.textBaseline = "bottom";
    g.fillText(`threshold ${data.threshold.toFixed(2)}`, margin.left + 4, yt - 2);
    if (data.selected_time !== null) {
      g.setLineDash([2, 3]);
      g.lineWidth = 1;
      g.strokeStyle = data.style.selected;
      const xs = Math.round(X(data.selected_time)) + 0.5;
      g.beginPath(); g.moveTo(xs, margin.top); g.lineTo(xs, margin.top + plotH); g.stroke();
    }
    g.setLineDash([]);
  }

  function nearest(event) {
    if (!points.length) return null;
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left;
    let lo = 0, hi = points.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (points[mid].x < x) lo = mid + 1; else hi = mid;
    }
    const near = [points[lo], points[lo - 1]].filter(Boolean);
    near.sort((a, b) => Math.abs(a.x - x) - Math.abs(b.x - x));
    return near[0];
  }

  function hover(event) {
    const p = nearest(event);
    if (!p || Math.abs(p.x - (event.clientX - canvas.getBoundingClientRect().left)) > 12) {
      tip.style.display = "none";
      return;
    }
    const i = p.i;
    const label = data.label[i] >= 0 ? data.labels[data.label[i]] : "no image";
    tip.textContent = "";
    for (const line of [label, `${data.time_text[i]} · frame ${data.frame_index[i]}`, `score ${data.score[i].toFixed(3)}`]) {
      const div = document.createElement("div");
      div.textContent = line;
      tip.appendChild(div);
    }
    tip.style.display = "block";
    const left = Math.min(p.x + 12, canvas.clientWidth - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${Math.max(0, p.y - tip.offsetHeight - 8)}px`;
  }
  canvas.onmouseleave = () => {
    tip.style.display = "none";
    brush.style.display = "none";
    dragFrom = null;
  };

  // a click selects the nearest point's frame; where the run is long, a drag across the chart
  // chooses the time window it spans (trigger value "window": [from, to] in seconds)
  const timeAt = (x) => x0 + ((x - margin.left) / (canvas.clientWidth - margin.left - margin.right)) * (x1 - x0);
  let dragFrom = null;
  canvas.onmousedown = (event) => {
    if (event.button !== 0) return;
    dragFrom = event.clientX - canvas.getBoundingClientRect().left;
  };
  canvas.onmousemove = (event) => {
    hover(event);
    if (dragFrom === null || !data.brush) return;
    const x = event.clientX - canvas.getBoundingClientRect().left;
    brush.style.display = Math.abs(x - dragFrom) >= 6 ? "block" : "none";
    brush.style.left = `${Math.min(x, dragFrom)}px`;
    brush.style.width = `${Math.abs(x - dragFrom)}px`;
    brush.style.top = `${margin.top}px`;
    brush.style.height = `${data.height - margin.top - margin.bottom}px`;
  };
  canvas.onmouseup = (event) => {
    if (dragFrom === null) return;
    const x = event.clientX - canvas.getBoundingClientRect().left;
    const from = dragFrom;
    dragFrom = null;
    brush.style.display = "none";
    if (data.brush && Math.abs(x - from) >= 6) {
      const [a, b] = [timeAt(Math.min(x, from)), timeAt(Math.max(x, from))];
      setTriggerValue("window", [Math.max(a, x0), Math.min(b, x1)]);
      return;
    }
    const p = nearest(event);
    if (p) setTriggerValue("frame", p.frame);
  };

  legend.textContent = "";
  for (const [colour, text, symbol] of data.legend) {
    const item = document.createElement("span");
    item.className = "item";
    const mark = document.createElement("span");
    mark.className = `mark ${symbol}`;
    mark.style.background = colour;
    item.appendChild(mark);
    item.appendChild(document.createTextNode(text));
    legend.appendChild(item);
  }

  draw();
  const resized = new ResizeObserver(() => draw());
  resized.observe(canvas);
  return () => resized.disconnect();
}
