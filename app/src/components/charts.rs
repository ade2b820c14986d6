//! Small SVG line charts for the live resource view (no chart library: a polyline), with a time
//! axis in clock time and a readout of the value and time under the pointer. A chart with fewer
//! than two samples says it is collecting them instead of drawing a bare line.
use leptos::prelude::*;

/// Width and height of the chart's drawing (the SVG stretches it to the card).
const W: f64 = 300.0;
const H: f64 = 60.0;

/// A sample's place on the chart: x from its index, y from its value against `top`.
fn point(i: usize, n: usize, v: f64, top: f64) -> (f64, f64) {
    let x = if n == 0 { 0.0 } else { i as f64 / n as f64 * W };
    let y = H - (v / top).clamp(0.0, 1.0) * (H - 4.0) - 2.0;
    (x, y)
}

/// The value at the top of the chart: `max`, or a little above the largest sample.
fn top_of(values: &[f64], max: Option<f64>) -> f64 {
    max.unwrap_or_else(|| values.iter().cloned().fold(1e-9, f64::max) * 1.2)
}

/// The polyline's points (empty below two samples).
pub fn polyline(samples: &[(i64, f64)], max: Option<f64>) -> String {
    if samples.len() < 2 {
        return String::new();
    }
    let values: Vec<f64> = samples.iter().map(|s| s.1).collect();
    let top = top_of(&values, max);
    let n = samples.len() - 1;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (x, y) = point(i, n, *v, top);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Clock time of `ms` (HH:MM:SS): the browser's local time, UTC on the server.
pub fn clock_time(ms: i64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        return format!("{:02}:{:02}:{:02}", d.get_hours(), d.get_minutes(), d.get_seconds());
    }
    #[allow(unreachable_code)]
    {
        let s = ms.div_euclid(1000).rem_euclid(86_400);
        format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    }
}

/// The time axis: the first, middle and last sample's clock time (none below two samples).
pub fn axis_labels(samples: &[(i64, f64)]) -> Vec<String> {
    if samples.len() < 2 {
        return Vec::new();
    }
    let mid = samples[samples.len() / 2].0;
    vec![clock_time(samples[0].0), clock_time(mid), clock_time(samples[samples.len() - 1].0)]
}

/// The sample nearest a pointer at `frac` (0 = left edge, 1 = right edge) of the chart.
pub fn nearest(samples: &[(i64, f64)], frac: f64) -> Option<usize> {
    if samples.is_empty() {
        return None;
    }
    let n = samples.len() - 1;
    Some(((frac.clamp(0.0, 1.0) * n as f64).round() as usize).min(n))
}

#[component]
pub fn Sparkline(
    title: &'static str,
    /// (time in ms since the epoch, value), oldest first.
    #[prop(into)]
    samples: Signal<Vec<(i64, f64)>>,
    #[prop(into)] label: Signal<String>,
    /// How a value reads in the hover readout.
    format: fn(f64) -> String,
    #[prop(default = "stroke-indigo-500")] color: &'static str,
    #[prop(optional)] max: Option<f64>,
) -> impl IntoView {
    let id = title.to_lowercase().replace(' ', "-");
    // The sample under the pointer, if it is over the chart.
    let hover = RwSignal::new(None::<usize>);
    let enough = move || samples.with(|s| s.len() >= 2);
    let on_move = move |ev: leptos::ev::PointerEvent| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let Some(el) = ev.current_target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else { return };
            let rect = el.get_bounding_client_rect();
            if rect.width() > 0.0 {
                let frac = (ev.client_x() as f64 - rect.left()) / rect.width();
                hover.set(samples.with_untracked(|s| nearest(s, frac)));
            }
        }
        let _ = &ev;
    };
    // The hovered sample (None when the pointer is away or the samples moved on).
    let hovered = move || hover.get().and_then(|i| samples.with(|s| s.get(i).copied().map(|p| (i, s.len(), p))));
    let readout = move || hovered().map(|(_, _, (t, v))| format!("{} at {}", format(v), clock_time(t)));
    let cursor_x = move || {
        hovered().map(|(i, len, _)| format!("{:.1}", point(i, len.saturating_sub(1), 0.0, 1.0).0)).unwrap_or_default()
    };
    let values = move || samples.with(|s| s.iter().map(|p| p.1).collect::<Vec<_>>());
    let top_label = move || format(top_of(&values(), max));
    let testid = format!("chart-{id}");
    let (card_id, plot_id) = (format!("{testid}-card"), format!("{testid}-plot"));
    view! {
        <div class="card min-w-0 p-4" data-testid=card_id>
            <div class="flex flex-wrap items-baseline justify-between gap-x-2">
                <h3 class="text-sm font-medium text-slate-500 dark:text-slate-400">{title}</h3>
                <span class="font-mono text-sm" data-testid=testid>{move || label.get()}</span>
            </div>
            <Show when=enough fallback=move || view! {
                <div class="mt-2 flex h-16 items-center justify-center rounded-lg border border-dashed border-slate-200 text-xs text-slate-400 dark:border-slate-700"
                    data-testid="chart-collecting">
                    "Collecting samples…"
                </div>
            }>
                <div class="relative mt-2" on:pointermove=on_move on:pointerleave=move |_| hover.set(None)
                    data-testid=plot_id.clone()>
                    <span class="pointer-events-none absolute left-0 top-0 font-mono text-[10px] text-slate-400" data-testid="chart-top">{top_label}</span>
                    <svg viewBox=format!("0 0 {W} {H}") class="h-16 w-full" preserveAspectRatio="none">
                        <polyline points=move || samples.with(|s| polyline(s, max)) fill="none" class=format!("{color} stroke-2") vector-effect="non-scaling-stroke"/>
                        <Show when=move || hover.get().is_some()>
                            <line x1=cursor_x y1="0" x2=cursor_x y2=H.to_string() class="stroke-slate-400" stroke-dasharray="2 2" vector-effect="non-scaling-stroke"/>
                        </Show>
                    </svg>
                    <div class="mt-1 flex justify-between font-mono text-[10px] text-slate-400" data-testid="chart-axis">
                        {move || samples.with(|s| axis_labels(s)).into_iter().map(|l| view! { <span data-testid="chart-axis-label">{l}</span> }).collect_view()}
                    </div>
                    <p class="mt-1 min-h-4 font-mono text-xs text-slate-600 dark:text-slate-300" data-testid="chart-readout">{readout}</p>
                </div>
            </Show>
        </div>
    }
}

pub fn human_bytes(v: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut v = v;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 14:02:30, 14:02:35, 14:02:40 UTC on 2026-12-01.
    const T0: i64 = 1_796_133_750_000;

    #[test]
    fn the_time_axis_reads_in_clock_time_and_the_pointer_finds_the_nearest_sample() {
        let s = vec![(T0, 0.0), (T0 + 5000, 50.0), (T0 + 10_000, 100.0)];
        assert_eq!(axis_labels(&s), ["14:02:30", "14:02:35", "14:02:40"]);
        assert_eq!(axis_labels(&s[..1]), Vec::<String>::new(), "no axis for one sample");
        assert_eq!(nearest(&s, 0.0), Some(0));
        assert_eq!(nearest(&s, 0.4), Some(1));
        assert_eq!(nearest(&s, 0.9), Some(2));
        assert_eq!(nearest(&s, 7.0), Some(2), "past the edge is the last sample");
        assert_eq!(nearest(&[], 0.5), None);
        let line = polyline(&s, Some(100.0));
        assert_eq!(line, "0.0,58.0 150.0,30.0 300.0,2.0");
        assert_eq!(polyline(&s[..1], Some(100.0)), "");
    }

    #[cfg(feature = "ssr")]
    fn render(samples: Vec<(i64, f64)>) -> String {
        let owner = Owner::new();
        owner.set();
        view! { <Sparkline title="CPU" samples=Signal::stored(samples) label=Signal::stored("1.0 %".to_string()) format=|v| format!("{v:.1} %") max=100.0/> }
            .to_html()
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn a_chart_with_fewer_than_two_samples_says_it_is_collecting_them_and_draws_no_line() {
        for few in [vec![], vec![(T0, 3.0)]] {
            let html = render(few);
            assert!(html.contains("Collecting samples…"), "{html}");
            assert!(!html.contains("<polyline"), "no bare line: {html}");
        }
        let html = render(vec![(T0, 1.0), (T0 + 5000, 50.0), (T0 + 10_000, 100.0)]);
        assert!(!html.contains("Collecting samples"), "{html}");
        assert!(html.contains("<polyline") && html.contains("150.0,30.0"), "{html}");
        for t in ["14:02:30", "14:02:35", "14:02:40"] {
            assert!(html.contains(t), "axis label {t}: {html}");
        }
        assert!(html.contains("100.0 %"), "the top of the scale: {html}");
    }
}
