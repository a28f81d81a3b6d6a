// Package pagestyle is the look every HTML report of mitosis shares (the load report, a
// roll's page, the advice), kept once so that they read as one product and a change of
// style reaches all of them. A page adds its own rules after these.
package pagestyle

import "html/template"

// CSS is the rules every report page starts its <style> with: the page, headings, tables
// with the first column left-aligned and numbers right-aligned, charts, warnings, missing
// data, SLO verdicts, notes and code.
const CSS template.CSS = `body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d1d1f;margin:0;background:#fafafa}
main{max-width:1340px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#555;margin:0 0 16px}
table{border-collapse:collapse;background:#fff;margin:8px 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f0f0f3}
.charts{display:flex;flex-wrap:wrap;gap:16px}.charts svg{background:#fff;border:1px solid #e5e5e5;border-radius:4px}
.warn{background:#fff7e0;border:1px solid #f0c36d;padding:8px 12px;border-radius:4px}.warn li{margin:4px 0}
.missing{background:#fdecec;border:1px solid #e5a0a0;padding:10px 14px;border-radius:4px}
.FAIL{color:#b42318;font-weight:600}.pass{color:#1a7f37}
code,pre{background:#f0f0f3;padding:1px 4px;border-radius:3px}pre{padding:8px 12px;overflow:auto}
small,.note{color:#666}
`

// Funcs gives a page's template the function `pagestyle`, which writes CSS into its
// <style> element: html/template passes a template.CSS through there as it is.
func Funcs() template.FuncMap {
	return template.FuncMap{"pagestyle": func() template.CSS { return CSS }}
}
