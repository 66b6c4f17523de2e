// A link to a path of the host's app that goes through the provider's `navigate` (the host's
// router) on a plain click, and stays a real link otherwise (new tab, copy address).
import type * as React from "react";

import { usePlugdock } from "./provider";

export interface LinkProps extends React.AnchorHTMLAttributes<HTMLAnchorElement> {
  to: string;
}

export function Link({ to, onClick, children, ...rest }: LinkProps) {
  const { navigate } = usePlugdock();
  return (
    <a
      href={to}
      onClick={(event) => {
        onClick?.(event);
        const modified = event.metaKey || event.ctrlKey || event.shiftKey || event.altKey;
        if (event.defaultPrevented || event.button !== 0 || modified || (rest.target && rest.target !== "_self")) {
          return;
        }
        event.preventDefault();
        navigate(to);
      }}
      {...rest}
    >
      {children}
    </a>
  );
}
