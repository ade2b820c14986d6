//! Tiny SVG line charts for the live resource view (no chart library: a polyline).
use leptos::prelude::*;

#[component]
pub fn Sparkline(
    title: &'static str,
    #[prop(into)] points: Signal<Vec<f64>>,
    #[prop(into)] label: Signal<String>,
    #[prop(default = "stroke-indigo-500")] color: &'static str,
    #[prop(optional)] max: Option<f64>,
) -> impl IntoView {
    let path = move || {
        let pts = points.get();
        if pts.len() < 2 {
            return String::new();
        }
        let top = max.unwrap_or_else(|| pts.iter().cloned().fold(1e-9, f64::max) * 1.2);
        let n = pts.len() - 1;
        pts.iter()
            .enumerate()
            .map(|(i, v)| {
                let x = i as f64 / n as f64 * 300.0;
                let y = 60.0 - (v / top).clamp(0.0, 1.0) * 56.0 - 2.0;
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    view! {
        <div class="card p-4">
            <div class="flex items-baseline justify-between">
                <h3 class="text-sm font-medium text-slate-500 dark:text-slate-400">{title}</h3>
                <span class="font-mono text-sm" data-testid=format!("chart-{}", title.to_lowercase().replace(' ', "-"))>{move || label.get()}</span>
            </div>
            <svg viewBox="0 0 300 60" class="mt-2 h-16 w-full" preserveAspectRatio="none">
                <polyline points=path fill="none" class=format!("{color} stroke-2") vector-effect="non-scaling-stroke"/>
            </svg>
            <Show when=move || { points.get().len() < 2 }>
                <p class="text-xs text-slate-400">"Collecting samples…"</p>
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
