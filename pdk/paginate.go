package pdk

// Paginate collects items page by page. It calls fetch with the empty cursor first, then with
// the cursor each page returned, and stops when
//
//   - a page returns the empty cursor (the last page),
//   - limit items are collected (limit <= 0 means no limit; the result is cut to limit),
//   - a page returns a cursor already seen (a misbehaving upstream would otherwise loop), or
//   - fetch fails, in which case the items so far are returned with the error.
//
// The cursor is whatever the API pages by: a next-page token, an offset, or the next URL. For
// Link-header APIs, fetch uses the cursor as the URL (the first page's URL when empty) and
// returns [NextLink] of the response:
//
//	issues, err := pdk.Paginate(in.Limit, func(next string) ([]Issue, string, error) {
//		if next == "" {
//			next = firstPageURL
//		}
//		var page []Issue
//		resp, err := client.GetJSON(next, &page)
//		if err != nil {
//			return nil, "", err
//		}
//		return page, pdk.NextLink(resp), nil
//	})
//
// The host bounds the requests of one call, so an endless API fails with too_many_requests
// rather than hanging.
func Paginate[T any](limit int, fetch func(cursor string) (items []T, next string, err error)) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	cursor := ""
	for {
		items, next, err := fetch(cursor)
		all = append(all, items...)
		if err != nil {
			return cut(all, limit), err
		}
		if limit > 0 && len(all) >= limit {
			return cut(all, limit), nil
		}
		if next == "" || seen[next] {
			return all, nil
		}
		seen[cursor] = true
		seen[next] = true
		cursor = next
	}
}

func cut[T any](items []T, limit int) []T {
	if limit > 0 && len(items) > limit {
		return items[:limit]
	}
	return items
}
